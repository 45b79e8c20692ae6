"""PaymentGateway: checkouts and their outcome."""

from __future__ import annotations

from typing import Protocol

from booking.domain.booking import PaymentResult, PaymentSession
from booking.domain.identity import Principal
from booking.domain.money import Money


class PaymentGateway(Protocol):
    """Contract:

    - `create_checkout` opens one checkout for the booking and answers its session; it raises
      `PaymentRejected` when refused for good and `PaymentUnavailable` when the outcome is
      unknown (a timeout: a checkout may exist). It is never retried by the gateway itself.
      The answer's booking id and amount are checked against the request
      (`PaymentRejected` if they differ).
    - `verify` answers what the payment side says of a session. Only a definitive answer is
      COMPLETED or FAILED; any non-2xx, timeout or unreadable answer is UNKNOWN, never FAILED.
      It does not raise for the payment side's failures.
    """

    async def create_checkout(
        self, booking_id: int, amount: Money, caller: Principal
    ) -> PaymentSession: ...

    async def verify(self, session_id: str, caller: Principal) -> PaymentResult: ...

    async def ping(self) -> None: ...
