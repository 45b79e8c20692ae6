"""A small circuit breaker: fail fast while a dependency is down, probe it again after a pause."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"  # calls go through
    OPEN = "open"  # calls fail fast until the pause is over
    HALF_OPEN = "half-open"  # one trial call is in flight; the others fail fast


class CircuitBreaker:
    """Contract:

    - `attempt()` answers None when a call must fail fast, else an `Attempt` the caller reports
      on exactly once. Closed: always an attempt. Open: None until `reset_after` seconds have
      passed since it opened; then exactly one trial attempt (half-open) and None for every
      other call until the trial reports.
    - `failed()`: `failure_threshold` consecutive failures open the breaker; a failed trial opens
      it again for another `reset_after`. `succeeded()` closes it and forgets past failures.
      `abandoned()` (cancelled, no answer) gives back a trial slot and changes nothing else.
    Not thread-safe; meant for one asyncio event loop.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        reset_after: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_after <= 0:
            raise ValueError("reset_after must be positive")
        self._threshold = failure_threshold
        self._reset_after = reset_after
        self._monotonic = monotonic
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        return BreakerState.HALF_OPEN if self._trial_in_flight else BreakerState.OPEN

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def attempt(self) -> Attempt | None:
        if self._opened_at is None:
            return Attempt(self, trial=False)
        if self._trial_in_flight or self._monotonic() - self._opened_at < self._reset_after:
            return None
        self._trial_in_flight = True
        return Attempt(self, trial=True)

    def _succeeded(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def _failed(self, trial: bool) -> None:
        self._failures += 1
        if trial or (self._opened_at is None and self._failures >= self._threshold):
            self._opened_at = self._monotonic()
        if trial:
            self._trial_in_flight = False

    def _abandoned(self, trial: bool) -> None:
        if trial:
            self._trial_in_flight = False


class Attempt:
    """One permitted call; report its outcome once."""

    __slots__ = ("_breaker", "_done", "trial")

    def __init__(self, breaker: CircuitBreaker, *, trial: bool) -> None:
        self._breaker = breaker
        self.trial = trial
        self._done = False

    def succeeded(self) -> None:
        if not self._done:
            self._done = True
            self._breaker._succeeded()

    def failed(self) -> None:
        if not self._done:
            self._done = True
            self._breaker._failed(self.trial)

    def abandoned(self) -> None:
        if not self._done:
            self._done = True
            self._breaker._abandoned(self.trial)
