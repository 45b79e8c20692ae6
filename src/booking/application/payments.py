"""Payment results: one use case for poll, webhook, topic and reconciler."""

from __future__ import annotations

import logging

from booking.application.errors import BookingNotFound, SessionMismatch
from booking.application.messages import Action
from booking.application.queries import BookingQueries
from booking.application.transitions import Change, Transitions, compensation
from booking.domain.booking import (
    Booking,
    BookingStatus,
    FailureReason,
    PaymentResult,
    PaymentStatus,
)
from booking.domain.errors import PaymentMismatch
from booking.domain.identity import Principal
from booking.ports.clock import Clock
from booking.ports.errors import SeatsAlreadyClaimed
from booking.ports.faults import FaultPoints, NoFaults, Step
from booking.ports.payment import PaymentGateway
from booking.ports.repository import UnitOfWorkFactory
from booking.ports.telemetry import Telemetry

log = logging.getLogger(__name__)


class ApplyPaymentResult:
    """Contract: a result changes a booking only if its session is the booking's own and its
    booking id and amount match (else `PaymentMismatch`, nothing changes, it is logged).

    COMPLETED confirms a PENDING booking; a late one re-confirms a FAILED booking whose seats
    can be claimed again, or flags it for refund. FAILED (definitive) fails a PENDING booking.
    PENDING and UNKNOWN change nothing. Applying the same result twice changes nothing more."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        telemetry: Telemetry,
        faults: FaultPoints | None = None,
    ) -> None:
        self._faults = faults or NoFaults()
        self._uow = uow
        self._clock = clock
        self._telemetry = telemetry
        self._transitions = Transitions(uow, clock)

    async def __call__(
        self, result: PaymentResult, *, booking_id: int | None = None, actor: str
    ) -> Booking:
        adopt = False
        if booking_id is None:
            booking_id, adopt = await self._locate(result)
        try:
            return await self._apply(booking_id, result, actor=actor, reclaim=True, adopt=adopt)
        except SeatsAlreadyClaimed:
            # The seats of a late payment went to someone else: refund, never drop it.
            return await self._apply(booking_id, result, actor=actor, reclaim=False, adopt=adopt)
        except PaymentMismatch as exc:
            log.warning("payment result refused for booking %s from %s: %s", booking_id, actor, exc)
            raise

    async def _locate(self, result: PaymentResult) -> tuple[int, bool]:
        """The booking a pushed result belongs to: by its session, or, for a paid checkout
        whose session was never stored (its opening timed out), by the booking it names."""
        async with self._uow() as tx:
            found = await tx.bookings.by_session(result.session_id)
            if found is None and result.booking_id is not None:
                named = await tx.bookings.get(result.booking_id)
                if named is not None and named.payment is None:
                    return named.booking_id, True
        if found is None:
            raise BookingNotFound(result.booking_id or 0)
        return found.booking_id, False

    async def _apply(
        self, booking_id: int, result: PaymentResult, *, actor: str, reclaim: bool, adopt: bool
    ) -> Booking:
        outcome: list[str] = []

        def mutate(b: Booking) -> Change | None:
            outcome.clear()
            if result.status not in (PaymentStatus.COMPLETED, PaymentStatus.FAILED):
                return None
            now = self._clock.now()
            if adopt and b.payment is None:
                b.adopt_checkout(result, now)
            b.check_payment(result)
            if result.status is PaymentStatus.FAILED:
                if b.status is not BookingStatus.PENDING:
                    return None
                b.fail(FailureReason.PAYMENT_FAILED, now)
                outcome.append("failed")
                return compensation(b, theater_locked=True)
            if b.status is BookingStatus.PENDING:
                b.confirm(now)
                outcome.append("confirmed")
                return Change(actions=(Action.THEATER_BOOK,))
            if b.status is BookingStatus.CONFIRMED:
                return None
            if reclaim and b.late_confirmable:
                b.confirm_late(now)
                outcome.append("confirmed_late")
                return Change(actions=(Action.THEATER_LOCK_BOOK,))
            if b.refund_required:
                return None
            b.require_refund(now)
            outcome.append("refund_required")
            return Change()

        booking = await self._transitions.apply(booking_id, mutate, actor=actor)
        if "confirmed" in outcome:
            self._faults.reached(Step.AFTER_CONFIRM_COMMIT)
        for name in outcome:
            reason = booking.failure_reason.value if booking.failure_reason else None
            self._telemetry.booking_outcome(name, reason)
        return booking


class VerifyPayment:
    """Contract: asks the payment side once (bounded by the gateway), applies the answer and
    returns the booking. `sessionId`, when given, must be the booking's own
    (`SessionMismatch`). The caller must own the booking (`BookingNotFound` otherwise)."""

    def __init__(
        self, queries: BookingQueries, payment: PaymentGateway, apply: ApplyPaymentResult
    ) -> None:
        self._queries = queries
        self._payment = payment
        self._apply = apply

    async def __call__(
        self, caller: Principal, booking_id: int, session_id: str | None = None
    ) -> Booking:
        booking = await self._queries.get(caller, booking_id)
        if session_id is not None and (
            booking.payment is None or booking.payment.session_id != session_id
        ):
            raise SessionMismatch(f"session is not the one of booking {booking_id}")
        if booking.payment is None:
            return booking
        if booking.status is not BookingStatus.PENDING and not booking.late_confirmable:
            return booking
        result = await self._payment.verify(booking.payment.session_id, caller)
        try:
            return await self._apply(result, booking_id=booking_id, actor=f"user:{caller.user_id}")
        except PaymentMismatch:
            return booking
