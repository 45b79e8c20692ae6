"""The circuit breaker guarding Redis calls, on a hand-moved clock."""

from __future__ import annotations

import pytest

from booking.adapters.redis.breaker import BreakerState, CircuitBreaker


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


@pytest.fixture
def breaker(ticks: Ticks) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=3, reset_after=5.0, monotonic=ticks)


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        attempt = breaker.attempt()
        assert attempt is not None
        attempt.failed()


def test_opens_after_consecutive_failures_only(breaker: CircuitBreaker) -> None:
    """A success between failures resets the count; the threshold opens it."""
    fail(breaker, 2)
    attempt = breaker.attempt()
    assert attempt is not None
    attempt.succeeded()
    fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    fail(breaker, 1)
    assert breaker.state is BreakerState.OPEN
    assert breaker.attempt() is None


def test_one_trial_after_the_pause(breaker: CircuitBreaker, ticks: Ticks) -> None:
    """After the pause exactly one trial goes through; its success closes the breaker."""
    fail(breaker, 3)
    ticks.now += 4.9
    assert breaker.attempt() is None
    ticks.now += 0.1
    trial = breaker.attempt()
    assert trial is not None
    assert trial.trial
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.attempt() is None
    trial.succeeded()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0


def test_failed_trial_reopens_for_a_full_pause(breaker: CircuitBreaker, ticks: Ticks) -> None:
    """A failed trial opens the breaker again, counted from the trial's failure."""
    fail(breaker, 3)
    ticks.now += 5
    trial = breaker.attempt()
    assert trial is not None
    ticks.now += 1
    trial.failed()
    assert breaker.state is BreakerState.OPEN
    ticks.now += 4.9
    assert breaker.attempt() is None
    ticks.now += 0.1
    assert breaker.attempt() is not None


def test_abandoned_trial_gives_its_slot_back(breaker: CircuitBreaker, ticks: Ticks) -> None:
    """A cancelled trial lets the next call try; a cancelled ordinary call changes nothing."""
    fail(breaker, 3)
    ticks.now += 5
    trial = breaker.attempt()
    assert trial is not None
    trial.abandoned()
    assert breaker.state is BreakerState.OPEN
    again = breaker.attempt()
    assert again is not None
    assert again.trial


def test_late_ordinary_failure_does_not_release_the_trial(
    breaker: CircuitBreaker, ticks: Ticks
) -> None:
    """A call begun before the breaker opened that fails late does not free the trial slot."""
    early = breaker.attempt()
    assert early is not None
    fail(breaker, 3)
    ticks.now += 5
    trial = breaker.attempt()
    assert trial is not None
    early.failed()
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.attempt() is None


def test_outcome_reported_once(breaker: CircuitBreaker) -> None:
    """Reporting an attempt twice counts once."""
    attempt = breaker.attempt()
    assert attempt is not None
    attempt.failed()
    attempt.failed()
    assert breaker.consecutive_failures == 1


@pytest.mark.parametrize(("threshold", "pause"), [(0, 1.0), (1, 0.0)])
def test_settings_are_validated(threshold: int, pause: float) -> None:
    """A threshold under one or a non-positive pause is refused."""
    with pytest.raises(ValueError, match="must be"):
        CircuitBreaker(failure_threshold=threshold, reset_after=pause)
