"""A local seat inventory with the Theater Service's semantics, seeded with a demo show."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from booking.domain.booking import SeatType
from booking.domain.identity import Principal
from booking.domain.money import Money
from booking.ports.errors import SeatsUnavailable, ShowNotFound, TheaterUnavailable
from booking.ports.theater import SeatInfo

DEMO_SHOW_ID = 1
DEMO_ROWS = 10
DEMO_COLUMNS = 12
_DEMO_PRICING = (
    (4, SeatType.SILVER, 150_00),
    (8, SeatType.GOLD, 250_00),
    (10, SeatType.PLATINUM, 400_00),
)


class SeatStatus(StrEnum):
    AVAILABLE = "AVAILABLE"
    LOCKED = "LOCKED"
    BOOKED = "BOOKED"


@dataclass(slots=True)
class _Seat:
    info: SeatInfo
    status: SeatStatus = SeatStatus.AVAILABLE


class LocalSeatInventory:
    """All or nothing like the Theater Service (but `book` is idempotent for seats already
    BOOKED, as the HttpTheaterCatalog makes the real one look). Switches for the harness:
    `down` (every call fails as unreachable) and `refuse_lock` (locks are refused)."""

    def __init__(self) -> None:
        self._shows: dict[int, dict[int, _Seat]] = {}
        self.down = False
        self.refuse_lock = False
        self.calls: list[tuple[str, int, tuple[int, ...]]] = []

    def add_show(self, show_id: int, seats: Sequence[SeatInfo]) -> None:
        self._shows[show_id] = {s.seat_id: _Seat(s) for s in seats}

    def seed_demo(self, show_id: int = DEMO_SHOW_ID, first_seat_id: int = 1) -> list[SeatInfo]:
        """A 10 x 12 hall in three seat types: seat ids count up row by row."""
        seats: list[SeatInfo] = []
        seat_id = first_seat_id
        for row in range(1, DEMO_ROWS + 1):
            seat_type, price = next((t, p) for last, t, p in _DEMO_PRICING if row <= last)
            for column in range(1, DEMO_COLUMNS + 1):
                seats.append(SeatInfo(seat_id, f"{row}-{column}", seat_type, Money(price)))
                seat_id += 1
        self.add_show(show_id, seats)
        return seats

    def status(self, show_id: int, seat_id: int) -> SeatStatus:
        return self._shows[show_id][seat_id].status

    def show_seats(self, show_id: int) -> list[tuple[SeatInfo, SeatStatus]]:
        return [(s.info, s.status) for s in self._show(show_id).values()]

    def _show(self, show_id: int) -> dict[int, _Seat]:
        if self.down:
            raise TheaterUnavailable("local seat inventory switched off")
        show = self._shows.get(show_id)
        if show is None:
            raise ShowNotFound(show_id)
        return show

    def _take(self, show_id: int, seat_ids: Sequence[int], want: SeatStatus) -> list[_Seat]:
        show = self._show(show_id)
        missing = [s for s in seat_ids if s not in show or show[s].status is not want]
        if missing:
            raise SeatsUnavailable(missing)
        return [show[s] for s in seat_ids]

    async def seats(
        self, show_id: int, seat_ids: Sequence[int], caller: Principal
    ) -> list[SeatInfo]:
        await asyncio.sleep(0)  # a suspension point, as a remote call has
        return [s.info for s in self._take(show_id, seat_ids, SeatStatus.AVAILABLE)]

    async def lock(self, show_id: int, seat_ids: Sequence[int], caller: Principal) -> None:
        await asyncio.sleep(0)  # a suspension point, as a remote call has
        self.calls.append(("lock", show_id, tuple(seat_ids)))
        if self.refuse_lock:
            self._show(show_id)
            raise SeatsUnavailable(list(seat_ids))
        for seat in self._take(show_id, seat_ids, SeatStatus.AVAILABLE):
            seat.status = SeatStatus.LOCKED

    async def book(self, show_id: int, seat_ids: Sequence[int], caller: Principal) -> None:
        await asyncio.sleep(0)  # a suspension point, as a remote call has
        self.calls.append(("book", show_id, tuple(seat_ids)))
        show = self._show(show_id)
        pending = [s for s in seat_ids if show[s].status is not SeatStatus.BOOKED]
        for seat in self._take(show_id, pending, SeatStatus.LOCKED):
            seat.status = SeatStatus.BOOKED

    async def release(self, show_id: int, seat_ids: Sequence[int], caller: Principal) -> None:
        await asyncio.sleep(0)  # a suspension point, as a remote call has
        self.calls.append(("release", show_id, tuple(seat_ids)))
        show = self._show(show_id)
        for seat_id in seat_ids:
            seat = show.get(seat_id)
            if seat is not None and seat.status is SeatStatus.LOCKED:
                seat.status = SeatStatus.AVAILABLE

    async def ping(self) -> None:
        if self.down:
            raise TheaterUnavailable("local seat inventory switched off")
