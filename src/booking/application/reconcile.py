"""Expire and reconcile: no booking stays PENDING past its hold plus grace (invariant 4)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from booking.application.messages import Action
from booking.application.payments import ApplyPaymentResult
from booking.application.settings import SagaSettings
from booking.application.transitions import Change, Transitions, compensation
from booking.domain.booking import Booking, FailureReason, PaymentStatus
from booking.domain.errors import PaymentMismatch
from booking.domain.identity import Principal
from booking.ports.clock import Clock
from booking.ports.payment import PaymentGateway
from booking.ports.repository import UnitOfWorkFactory
from booking.ports.telemetry import Telemetry

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ReconcileReport:
    checked: int = 0
    actions: dict[str, int] = field(default_factory=dict)

    def count(self, action: str) -> None:
        self.actions[action] = self.actions.get(action, 0) + 1


class Reconciler:
    """Contract: every PENDING booking near or past its hold is settled by asking the payment
    side first. Paid → confirmed (through ApplyPaymentResult). Definitively failed → FAILED.
    Not paid and past the hold → FAILED `HOLD_EXPIRED`, everything released. No answer → it
    waits, but not past hold + grace, then fails `HOLD_EXPIRED` (a later payment takes the
    late-payment path). Bookings are leased, so replicas never check one twice at once."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        payment: PaymentGateway,
        apply: ApplyPaymentResult,
        clock: Clock,
        settings: SagaSettings,
        telemetry: Telemetry,
    ) -> None:
        self._uow = uow
        self._payment = payment
        self._apply = apply
        self._clock = clock
        self._settings = settings
        self._telemetry = telemetry
        self._transitions = Transitions(uow, clock)

    async def run_once(self) -> ReconcileReport:
        report = ReconcileReport()
        now = self._clock.now()
        async with self._uow() as tx:
            due = await tx.bookings.claim_due(
                now + self._settings.reconcile_margin,
                now,
                self._settings.reconcile_lease,
                self._settings.reconcile_batch,
            )
            await tx.commit()
        for booking in due:
            report.checked += 1
            action = await self._settle(booking)
            report.count(action)
            self._telemetry.reconciler_action(action)
        return report

    async def _settle(self, booking: Booking) -> str:
        status = PaymentStatus.UNKNOWN
        if booking.payment is not None:
            caller = Principal.system(booking.user_id)
            result = await self._payment.verify(booking.payment.session_id, caller)
            status = result.status
            if status in (PaymentStatus.COMPLETED, PaymentStatus.FAILED):
                try:
                    await self._apply(result, booking_id=booking.booking_id, actor="reconciler")
                except PaymentMismatch:
                    status = PaymentStatus.UNKNOWN
                else:
                    return "paid" if status is PaymentStatus.COMPLETED else "payment_failed"
        now = self._clock.now()
        if now < booking.hold_expires_at:
            return "waiting"
        answered_unpaid = status is PaymentStatus.PENDING or booking.payment is None
        if not answered_unpaid and now < booking.hold_expires_at + self._settings.grace:
            return "waiting_for_payment_side"

        def expire(b: Booking) -> Change | None:
            if b.is_terminal:
                return None
            b.fail(FailureReason.HOLD_EXPIRED, self._clock.now())
            undo = compensation(b, theater_locked=True)
            if answered_unpaid:
                return undo
            # Expired without knowing whether it was paid: ask again after the releases, until
            # the payment side answers, so that a payment made in time is never dropped.
            return Change(
                actions=(*undo.actions, Action.PAYMENT_RECHECK), release_claims=undo.release_claims
            )

        await self._transitions.apply(booking.booking_id, expire, actor="reconciler")
        self._telemetry.booking_outcome("failed", FailureReason.HOLD_EXPIRED.value)
        return "expired"
