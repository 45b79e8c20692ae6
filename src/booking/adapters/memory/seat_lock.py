"""In-process seat holds with the same contract as the Redis adapter."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

from booking.ports.clock import Clock
from booking.ports.errors import SeatLockUnavailable
from booking.ports.seat_lock import HoldOutcome


class MemorySeatLock:
    """Holds keyed by (show, seat). Every method runs without awaiting, so it is atomic under
    asyncio. `down = True` makes every call raise, as an unreachable store does."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._holds: dict[tuple[int, int], tuple[str, datetime]] = {}
        self.down = False
        self.degraded = False

    def _check(self) -> None:
        self.degraded = self.down
        if self.down:
            raise SeatLockUnavailable("in-process hold store switched off")

    def _owner(self, key: tuple[int, int], now: datetime) -> str | None:
        hold = self._holds.get(key)
        if hold is None:
            return None
        if hold[1] <= now:
            del self._holds[key]
            return None
        return hold[0]

    async def acquire(
        self, show_id: int, seat_ids: Sequence[int], owner: str, ttl: timedelta
    ) -> HoldOutcome:
        await asyncio.sleep(0)  # a suspension point, as a remote call has
        self._check()
        now = self._clock.now()
        conflicts = tuple(
            s for s in seat_ids if self._owner((show_id, s), now) not in (None, owner)
        )
        if conflicts:
            return HoldOutcome(acquired=False, conflicts=conflicts)
        for seat in seat_ids:
            self._holds[(show_id, seat)] = (owner, now + ttl)
        return HoldOutcome(acquired=True)

    async def release(self, show_id: int, seat_ids: Sequence[int], owner: str) -> int:
        await asyncio.sleep(0)  # a suspension point, as a remote call has
        self._check()
        now = self._clock.now()
        released = 0
        for seat in seat_ids:
            if self._owner((show_id, seat), now) == owner:
                del self._holds[(show_id, seat)]
                released += 1
        return released

    async def extend(
        self, show_id: int, seat_ids: Sequence[int], owner: str, ttl: timedelta
    ) -> bool:
        await asyncio.sleep(0)  # a suspension point, as a remote call has
        self._check()
        now = self._clock.now()
        owned = [s for s in seat_ids if self._owner((show_id, s), now) == owner]
        for seat in owned:
            self._holds[(show_id, seat)] = (owner, now + ttl)
        return len(owned) == len(seat_ids)

    async def holders(self, show_id: int, seat_ids: Sequence[int]) -> dict[int, str]:
        await asyncio.sleep(0)  # a suspension point, as a remote call has
        self._check()
        now = self._clock.now()
        found = {s: self._owner((show_id, s), now) for s in seat_ids}
        return {s: o for s, o in found.items() if o is not None}

    async def ping(self) -> None:
        self._check()
