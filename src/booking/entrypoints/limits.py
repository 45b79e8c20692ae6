"""Abuse limits at the edge: how many bookings one caller may try to create per minute."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from booking.domain.identity import Principal
from booking.entrypoints.problems import ApiError

_MAX_TRACKED = 100_000


class RateLimiter:
    """Contract: `admit(key)` answers 0.0 when the call may go ahead (and counts it), else the
    seconds to wait before the next call of that key would be admitted (and counts nothing).

    GCRA (the generic cell rate algorithm, as in ATM networks and redis-cell): a key may make
    `burst` calls at once, then one call every `60 / per_minute` seconds; a key's whole state is
    one timestamp. At most `max_tracked` keys are remembered (the least recently seen is dropped,
    and starts again with a full burst). Per process: with several replicas each admits its own
    share, which bounds abuse without a round trip on the hot path. One event loop; not
    thread-safe."""

    def __init__(
        self,
        per_minute: int,
        burst: int,
        *,
        max_tracked: int = _MAX_TRACKED,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute <= 0 or burst <= 0 or max_tracked <= 0:
            raise ValueError("per_minute, burst and max_tracked must be positive")
        self._interval = 60.0 / per_minute
        self._tolerance = self._interval * (burst - 1)
        self._max = max_tracked
        self._now = monotonic
        self._tat: OrderedDict[Any, float] = OrderedDict()

    def admit(self, key: Any) -> float:
        now = self._now()
        tat = max(self._tat.get(key, now), now)
        wait = tat - self._tolerance - now
        if wait > 0:
            return wait
        self._tat[key] = tat + self._interval
        self._tat.move_to_end(key)
        while len(self._tat) > self._max:
            self._tat.popitem(last=False)
        return 0.0


class CreationLimit:
    """The per-caller limit on `POST /api/v1/bookings`; `None` limiter means no limit.

    The create endpoint checks it first thing: after the caller is identified (401 as usual
    without one), before the body is read or anything is held, and before Idempotency-Key
    handling, so a limited attempt is never kept as a key's answer."""

    def __init__(self, limiter: RateLimiter | None) -> None:
        self.limiter = limiter

    @classmethod
    def of(cls, per_minute: int, burst: int) -> CreationLimit:
        """`per_minute` 0 turns the limit off."""
        return cls(RateLimiter(per_minute, burst) if per_minute > 0 else None)

    def check(self, caller: Principal) -> None:
        if self.limiter is None:
            return
        wait = self.limiter.admit(caller.user_id)
        if wait > 0:
            raise ApiError(
                429,
                "TOO_MANY_REQUESTS",
                "too many bookings created by this caller; try again later",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
