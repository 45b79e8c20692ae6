"""A booking paid in time but expired while the payment side could not answer is not dropped:
once the payment side answers again the payment confirms it late, or flags it for refund.

Found by the Payment partition scenario: the customer paid, polled while Payment hung, gave
up; the reconciler could not verify either and expired the booking at hold + grace; nobody
asked again, and the money was kept for a FAILED booking."""

from __future__ import annotations

from datetime import timedelta

import pytest

from booking.adapters.sandbox.payment import SandboxPaymentGateway
from booking.adapters.sandbox.theater import SeatStatus
from booking.application.messages import TOPIC_REFUND, TOPIC_SUCCESS
from booking.application.reconcile import Reconciler
from booking.application.relay import ActionRunner, OutboxRelay
from booking.domain.booking import (
    BookingStatus,
    FailureReason,
    PaymentResult,
    PaymentSession,
    PaymentStatus,
)
from booking.domain.identity import Principal
from booking.domain.money import Money
from booking.ports.telemetry import NullTelemetry
from tests.support.harness import SHOW_ID, Harness, small_hall


class HangingPayment:
    """The sandbox checkout behind a switch: while `hanging`, every verify is UNKNOWN (what the
    HTTP gateway answers on a timeout)."""

    def __init__(self, sandbox: SandboxPaymentGateway) -> None:
        self.sandbox = sandbox
        self.hanging = False

    async def create_checkout(
        self, booking_id: int, amount: Money, caller: Principal
    ) -> PaymentSession:
        return await self.sandbox.create_checkout(booking_id, amount, caller)

    async def verify(self, session_id: str, caller: Principal) -> PaymentResult:
        if self.hanging:
            return PaymentResult(session_id, PaymentStatus.UNKNOWN, None, None)
        return await self.sandbox.verify(session_id, caller)

    async def ping(self) -> None:
        return None


@pytest.mark.parametrize("seats_taken_meanwhile", [False, True])
async def test_payment_made_in_time_survives_an_expiry_without_answer(
    seats_taken_meanwhile: bool,
) -> None:
    """Paid before the hold ran out, expired HOLD_EXPIRED while verify had no answer; when the
    payment side answers again: CONFIRMED late (seats free) or flagged for refund (seats gone),
    announced either way."""
    h = Harness()
    h.theater.add_show(SHOW_ID, small_hall(4))
    payment = HangingPayment(h.payment)
    telemetry = NullTelemetry()
    reconciler = Reconciler(h.uow, payment, h.apply, h.clock, h.settings, telemetry)
    actions = ActionRunner(h.uow, h.theater, h.locks, payment, h.apply)
    relay = OutboxRelay(h.store, h.publisher, actions, h.clock, h.settings, telemetry, "relay")

    booking = await h.create(h.user(1), SHOW_ID, [101, 102])
    assert booking.payment is not None
    h.payment.settle(booking.payment.session_id, PaymentStatus.COMPLETED)  # paid in time
    payment.hanging = True
    h.clock.advance(h.settings.hold_ttl + h.settings.grace + timedelta(seconds=1))
    await reconciler.run_once()
    await relay.drain()
    expired = h.booking(booking.booking_id)
    assert (expired.status, expired.failure_reason) == (
        BookingStatus.FAILED,
        FailureReason.HOLD_EXPIRED,
    )
    assert h.theater.status(SHOW_ID, 101) is SeatStatus.AVAILABLE

    if seats_taken_meanwhile:
        await h.create(h.user(2), SHOW_ID, [102, 103])
    payment.hanging = False
    for _ in range(5):  # the recheck's backoff runs out, bounded
        h.clock.advance(h.settings.retry_max)
        await relay.drain()

    final = h.booking(booking.booking_id)
    published = [m.name for m in h.publisher.published if m.booking_id == booking.booking_id]
    if seats_taken_meanwhile:
        assert final.status is BookingStatus.FAILED
        assert final.refund_required
        assert TOPIC_REFUND in published
    else:
        assert final.status is BookingStatus.CONFIRMED
        assert h.theater.status(SHOW_ID, 101) is SeatStatus.BOOKED
        assert TOPIC_SUCCESS in published
