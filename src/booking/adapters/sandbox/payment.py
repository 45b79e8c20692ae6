"""A sandbox checkout: sessions the user pays or declines on a page the service serves."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import timedelta

from booking.domain.booking import PaymentResult, PaymentSession, PaymentStatus
from booking.domain.identity import Principal
from booking.domain.money import Money
from booking.ports.clock import Clock
from booking.ports.errors import PaymentRejected, PaymentUnavailable

CHECKOUT_LIFETIME = timedelta(hours=5)


@dataclass(slots=True)
class Checkout:
    session_id: str
    booking_id: int
    user_id: int
    amount: Money
    status: PaymentStatus = PaymentStatus.PENDING


class SandboxPaymentGateway:
    """Semantics of the Payment Service without a card network. Switches for the harness:
    `create_fails` (checkout refused), `down` (create unknown, verify UNKNOWN)."""

    def __init__(self, clock: Clock, base_url: str = "http://localhost:8000") -> None:
        self._clock = clock
        self.base_url = base_url.rstrip("/")
        self.checkouts: dict[str, Checkout] = {}
        self.create_fails = False
        self.down = False
        self.creates = 0

    async def create_checkout(
        self, booking_id: int, amount: Money, caller: Principal
    ) -> PaymentSession:
        await asyncio.sleep(0)  # a suspension point, as a remote call has
        if self.down:
            raise PaymentUnavailable("sandbox checkout switched off")
        if self.create_fails or amount.minor < 100:
            raise PaymentRejected("sandbox refused the checkout")
        self.creates += 1
        session_id = f"cs_sandbox_{secrets.token_hex(12)}"
        self.checkouts[session_id] = Checkout(session_id, booking_id, caller.user_id, amount)
        return PaymentSession(
            session_id=session_id,
            url=f"{self.base_url}/sandbox/checkout/{session_id}",
            expires_at=self._clock.now() + CHECKOUT_LIFETIME,
        )

    async def verify(self, session_id: str, caller: Principal) -> PaymentResult:
        await asyncio.sleep(0)  # a suspension point, as a remote call has
        checkout = self.checkouts.get(session_id)
        if self.down or checkout is None:
            return PaymentResult(session_id, PaymentStatus.UNKNOWN, None, None)
        return PaymentResult(session_id, checkout.status, checkout.booking_id, checkout.amount)

    def settle(self, session_id: str, status: PaymentStatus) -> PaymentResult:
        """The user paid (COMPLETED) or declined (FAILED) on the checkout page."""
        checkout = self.checkouts[session_id]
        if checkout.status is PaymentStatus.PENDING:
            checkout.status = status
        return PaymentResult(session_id, checkout.status, checkout.booking_id, checkout.amount)

    async def ping(self) -> None:
        if self.down:
            raise PaymentUnavailable("sandbox checkout switched off")
