"""One place that turns an aggregate change into a committed row, its events, actions and audit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from booking.application.errors import BookingNotFound
from booking.application.messages import Action, action_message, event_message
from booking.domain.booking import Booking, BookingStatus
from booking.ports.clock import Clock
from booking.ports.errors import StaleBooking
from booking.ports.repository import AuditEntry, UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)

_MAX_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Change:
    """What a mutation asks for beyond the aggregate's own events."""

    actions: tuple[Action, ...] = ()
    release_claims: bool = False


Mutation = Callable[[Booking], Change | None]


def compensation(booking: Booking, *, theater_locked: bool) -> Change:
    """Undo a booking that is no longer live: Theater seats (which also frees the claims once
    done), then the fast-filter hold. Without a Theater lock the claims go at once."""
    if theater_locked:
        return Change(actions=(Action.THEATER_RELEASE, Action.HOLD_RELEASE))
    return Change(actions=(Action.HOLD_RELEASE,), release_claims=True)


class Transitions:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def apply(self, booking_id: int, mutate: Mutation, *, actor: str) -> Booking:
        """Load, mutate, save on the read version, write outbox rows and audit, commit.

        `mutate` returns None to say nothing changes. A concurrent writer makes the save stale:
        the mutation runs again on the fresh booking, which is why it must be pure."""
        for _ in range(_MAX_ATTEMPTS):
            async with self._uow() as tx:
                booking = await tx.bookings.get(booking_id)
                if booking is None:
                    raise BookingNotFound(booking_id)
                before, version = booking.status, booking.version
                change = mutate(booking)
                if change is None or booking.version == version:
                    return booking
                try:
                    await tx.bookings.save(booking, version)
                except StaleBooking:
                    log.info("booking %s changed concurrently; retrying", booking_id)
                    continue
                await self.record(tx, booking, change, before=before, actor=actor)
                await tx.commit()
                return booking
        raise StaleBooking(booking_id)

    async def record(
        self,
        tx: UnitOfWork,
        booking: Booking,
        change: Change,
        *,
        before: BookingStatus | None,
        actor: str,
    ) -> None:
        now = self._clock.now()
        messages = [event_message(e) for e in booking.pull_events()]
        messages += [action_message(booking, a, now) for a in change.actions]
        if messages:
            await tx.outbox.put(messages)
        if change.release_claims:
            await tx.bookings.release_claims(booking.booking_id)
        reason = booking.failure_reason.value if booking.failure_reason else None
        await tx.audit.record(
            AuditEntry(
                booking_id=booking.booking_id,
                actor=actor,
                at=now,
                from_status=before,
                to_status=booking.status,
                reason=reason,
                refund_required=booking.refund_required,
            )
        )
