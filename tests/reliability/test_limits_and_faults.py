"""The creation limiter's arithmetic and the crash points' selection, without a server."""

from __future__ import annotations

import pytest

from booking.entrypoints.faults import CrashAtStep, fault_points
from booking.entrypoints.limits import RateLimiter
from booking.ports.faults import NoFaults, Step


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_one_per_interval_with_the_wait_told() -> None:
    """`burst` calls pass at once; the next is told how long to wait; after that wait it passes."""
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=3, monotonic=clock)
    assert [limiter.admit("u") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.admit("u")
    assert wait == pytest.approx(1.0)
    assert limiter.admit("u") == pytest.approx(1.0)  # a refused call does not count
    clock.now += wait
    assert limiter.admit("u") == 0.0
    assert limiter.admit("other") == 0.0


def test_an_idle_caller_gets_its_burst_back_and_memory_is_bounded() -> None:
    """After a quiet spell the whole burst is available again; at most `max_tracked` callers
    are remembered."""
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=2, max_tracked=10, monotonic=clock)
    assert limiter.admit("u") == limiter.admit("u") == 0.0
    assert limiter.admit("u") > 0
    clock.now += 60
    assert limiter.admit("u") == limiter.admit("u") == 0.0
    for n in range(100):
        limiter.admit(n)
    assert len(limiter._tat) == 10


def test_crash_points_fire_only_at_their_step_after_the_skips() -> None:
    """The armed step kills after `skip` passes; every other step passes through."""
    kills: list[Step] = []
    faults = CrashAtStep(Step.AFTER_INSERT, skip=1, kill=lambda: kills.append(Step.AFTER_INSERT))
    faults.reached(Step.AFTER_HOLD)
    faults.reached(Step.AFTER_INSERT)
    assert kills == []
    faults.reached(Step.AFTER_INSERT)
    assert kills == [Step.AFTER_INSERT]


def test_crash_points_come_from_the_environment_and_typos_are_refused() -> None:
    """Unset: no faults; a step name: armed there; an unknown name: a configuration error."""
    assert isinstance(fault_points({}), NoFaults)
    armed = fault_points({"BOOKING_FAULT_CRASH_AT": "after_checkout"})
    assert isinstance(armed, CrashAtStep) and armed.step is Step.AFTER_CHECKOUT
    with pytest.raises(ValueError, match="not a saga step"):
        fault_points({"BOOKING_FAULT_CRASH_AT": "after_lunch"})
