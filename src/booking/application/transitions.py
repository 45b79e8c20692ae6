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
from booking.ports.repository import AuditEntry, BookingWrite, UnitOfWorkFactory

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

    async def apply(
        self, booking_id: int, mutate: Mutation, *, actor: str, known: Booking | None = None
    ) -> Booking:
        """Load, mutate, and write on the read version with its outbox rows and audit.

        `mutate` returns None to say nothing changes. A concurrent writer makes the write stale:
        the mutation runs again on the fresh booking, which is why it must be pure. `known` is
        the booking as the caller just wrote it: the first attempt starts from it instead of
        reading it back."""
        for _ in range(_MAX_ATTEMPTS):
            booking, known = known, None
            if booking is None:
                booking = await self._uow.get(booking_id)
                if booking is None:
                    raise BookingNotFound(booking_id)
            before, version = booking.status, booking.version
            change = mutate(booking)
            if change is None or booking.version == version:
                return booking
            try:
                await self._uow.write(
                    self.written(booking, change, expected=version, before=before, actor=actor)
                )
            except StaleBooking:
                log.info("booking %s changed concurrently; retrying", booking_id)
                continue
            return booking
        raise StaleBooking(booking_id)

    def written(
        self,
        booking: Booking,
        change: Change,
        *,
        expected: int | None,
        before: BookingStatus | None,
        actor: str,
    ) -> BookingWrite:
        """The write of a changed booking: its events and actions as outbox rows, the claims
        to free, and the audit entry of the change."""
        now = self._clock.now()
        messages = [event_message(e) for e in booking.pull_events()]
        messages += [action_message(booking, a, now) for a in change.actions]
        reason = booking.failure_reason.value if booking.failure_reason else None
        return BookingWrite(
            booking=booking,
            expected_version=expected,
            messages=messages,
            release_claims=change.release_claims,
            audit=AuditEntry(
                booking_id=booking.booking_id,
                actor=actor,
                at=now,
                from_status=before,
                to_status=booking.status,
                reason=reason,
                refund_required=booking.refund_required,
            ),
        )
