"""Reads and the owner's own commands: get, list, seats of a booking, cancel."""

from __future__ import annotations

from dataclasses import dataclass

from booking.application.errors import BookingNotFound
from booking.application.transitions import Change, Transitions, compensation
from booking.domain.booking import Booking, BookingStatus, Seat
from booking.domain.identity import Principal
from booking.ports.clock import Clock
from booking.ports.repository import PageCursor, UnitOfWorkFactory
from booking.ports.telemetry import Telemetry

MAX_PAGE = 100


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Booking]
    next_cursor: PageCursor | None


class BookingQueries:
    """Contract: a caller sees only its own bookings; another user's id answers
    `BookingNotFound` exactly as an unknown one does. Admins may read any booking; service
    accounts may read the seats of any booking (the Notification Service's callback)."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def _load(self, booking_id: int) -> Booking:
        booking = await self._uow.get(booking_id)
        if booking is None:
            raise BookingNotFound(booking_id)
        return booking

    async def get(self, caller: Principal, booking_id: int) -> Booking:
        booking = await self._load(booking_id)
        if booking.user_id != caller.user_id and not caller.is_admin:
            raise BookingNotFound(booking_id)
        return booking

    async def seats(self, caller: Principal, booking_id: int) -> list[Seat]:
        booking = await self._load(booking_id)
        if booking.user_id != caller.user_id and not (caller.is_service or caller.is_admin):
            raise BookingNotFound(booking_id)
        return list(booking.seats)

    async def list_own(
        self,
        caller: Principal,
        *,
        status: BookingStatus | None = None,
        limit: int = 20,
        after: PageCursor | None = None,
    ) -> Page:
        limit = max(1, min(limit, MAX_PAGE))
        async with self._uow() as tx:
            rows = await tx.bookings.list_for_user(
                caller.user_id, status=status, limit=limit + 1, after=after
            )
        items = rows[:limit]
        more = len(rows) > limit
        cursor = PageCursor(items[-1].created_at, items[-1].booking_id) if more else None
        return Page(items, cursor)


class CancelBooking:
    """Contract: the owner cancels a PENDING booking (`IllegalTransition` in other states);
    its Theater seats and hold are released and the checkout is abandoned."""

    def __init__(
        self, queries: BookingQueries, uow: UnitOfWorkFactory, clock: Clock, telemetry: Telemetry
    ) -> None:
        self._queries = queries
        self._clock = clock
        self._telemetry = telemetry
        self._transitions = Transitions(uow, clock)

    async def __call__(self, caller: Principal, booking_id: int) -> Booking:
        await self._queries.get(caller, booking_id)

        def cancel(b: Booking) -> Change:
            b.cancel(self._clock.now())
            return compensation(b, theater_locked=True)

        booking = await self._transitions.apply(booking_id, cancel, actor=f"user:{caller.user_id}")
        self._telemetry.booking_outcome("cancelled", "CANCELLED_BY_USER")
        return booking
