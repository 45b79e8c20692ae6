"""TheaterCatalog: the seat inventory (the Theater Service, or a local one)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from booking.domain.booking import SeatType
from booking.domain.identity import Principal
from booking.domain.money import Money


@dataclass(frozen=True, slots=True)
class SeatInfo:
    seat_id: int
    seat_number: str
    seat_type: SeatType
    price: Money


class TheaterCatalog(Protocol):
    """Contract (show-seat ids throughout):

    - `seats` answers every asked seat with number, type and price when all are AVAILABLE;
      otherwise raises `SeatsUnavailable` naming the seats that are not (never a subset), or
      `ShowNotFound`.
    - `lock` is all or nothing AVAILABLE → LOCKED; raises `SeatsUnavailable`/`TheaterRejected`
      when refused.
    - `book` moves LOCKED → BOOKED and is idempotent from the caller's side: seats already
      BOOKED by an earlier attempt count as done.
    - `release` moves LOCKED → AVAILABLE and is idempotent.
    - Transient failures raise `TheaterUnavailable` (the outcome of `lock`/`book` is then unknown).
    """

    async def seats(
        self, show_id: int, seat_ids: Sequence[int], caller: Principal
    ) -> list[SeatInfo]: ...

    async def lock(self, show_id: int, seat_ids: Sequence[int], caller: Principal) -> None: ...

    async def book(self, show_id: int, seat_ids: Sequence[int], caller: Principal) -> None: ...

    async def release(self, show_id: int, seat_ids: Sequence[int], caller: Principal) -> None: ...

    async def ping(self) -> None: ...
