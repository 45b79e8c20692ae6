"""SeatLock: short-lived, owner-bound holds on show-seats (the fast filter, not the arbiter)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol


@dataclass(frozen=True, slots=True)
class HoldOutcome:
    """acquired: every seat is now held by the owner; else conflicts names the taken seats."""

    acquired: bool
    conflicts: tuple[int, ...] = ()


class SeatLock(Protocol):
    """Contract:

    - `acquire` is all or nothing: either every seat is held by `owner` for `ttl`, or nothing
      changed and `conflicts` lists the seats another owner holds. Re-acquiring seats the same
      owner already holds succeeds and refreshes their TTL.
    - `release` and `extend` act only on seats held by `owner`; another owner's hold is never
      touched. `release` answers how many holds it removed; `extend` answers whether every seat
      was still held by `owner` (and extends those that were).
    - A hold disappears by itself after its TTL.
    - `holders` answers the current owner of each held seat (free seats are absent).
    - Every method raises `SeatLockUnavailable` when the store cannot be reached in time.
    """

    async def acquire(
        self, show_id: int, seat_ids: Sequence[int], owner: str, ttl: timedelta
    ) -> HoldOutcome: ...

    async def release(self, show_id: int, seat_ids: Sequence[int], owner: str) -> int: ...

    async def extend(
        self, show_id: int, seat_ids: Sequence[int], owner: str, ttl: timedelta
    ) -> bool: ...

    async def holders(self, show_id: int, seat_ids: Sequence[int]) -> dict[int, str]: ...

    async def ping(self) -> None:
        """Raise `SeatLockUnavailable` unless the store answers."""
        ...


def hold_owner(booking_id: int) -> str:
    """The owner token of a booking's holds."""
    return f"booking:{booking_id}"
