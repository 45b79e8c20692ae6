"""RedisSeatLock while its Redis server dies, hangs and comes back (a private redis-server)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from booking.adapters.redis.breaker import BreakerState
from booking.adapters.redis.seat_lock import RedisSeatLock, create_redis_client
from booking.ports.errors import SeatLockUnavailable
from tests.support.redis import RedisServer

pytestmark = pytest.mark.redis

TTL = timedelta(minutes=5)
THRESHOLD = 2
RESET_AFTER = 30.0  # seconds of the fake monotonic clock


class ManualMonotonic:
    """A monotonic clock the test moves, so the breaker's pause needs no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def monotonic() -> ManualMonotonic:
    return ManualMonotonic()


@pytest.fixture
async def lock(
    private_redis: RedisServer, monotonic: ManualMonotonic
) -> AsyncIterator[RedisSeatLock]:
    # Timeouts roomy enough for a busy test machine; the frozen-server test waits them out once.
    client = create_redis_client(private_redis.url, socket_timeout=1.0, connect_timeout=1.0)
    yield RedisSeatLock(
        client,
        call_timeout=2.0,
        failure_threshold=THRESHOLD,
        reset_after=RESET_AFTER,
        monotonic=monotonic,
    )
    await client.aclose()


def every_call(lock: RedisSeatLock) -> list[Callable[[], Awaitable[object]]]:
    return [
        lambda: lock.acquire(1, [1], "booking:9", TTL),
        lambda: lock.release(1, [1], "booking:9"),
        lambda: lock.extend(1, [1], "booking:9", TTL),
        lambda: lock.holders(1, [1]),
        lock.ping,
    ]


async def open_breaker(lock: RedisSeatLock) -> None:
    """Fail calls against the dead server until the breaker opens (bounded)."""
    for _ in range(THRESHOLD):
        with pytest.raises(SeatLockUnavailable) as caught:
            await lock.acquire(1, [1, 2], "booking:2", TTL)
        assert caught.value.__cause__ is not None  # it did try Redis
    assert lock.degraded
    assert lock.breaker_state is BreakerState.OPEN


async def test_stopped_redis_raises_unavailable_and_marks_degraded(
    private_redis: RedisServer, lock: RedisSeatLock
) -> None:
    """With Redis dead every method raises SeatLockUnavailable, and after the threshold the
    adapter is degraded and fails fast without trying Redis."""
    assert (await lock.acquire(1, [1], "booking:1", TTL)).acquired
    assert not lock.degraded
    private_redis.stop()
    await open_breaker(lock)
    for call in every_call(lock):
        with pytest.raises(SeatLockUnavailable) as caught:
            await call()
        assert caught.value.__cause__ is None  # failed fast: no Redis error behind it
        assert caught.value.dependency == "seat-lock"


async def test_holds_work_again_when_redis_is_back(
    private_redis: RedisServer, lock: RedisSeatLock, monotonic: ManualMonotonic
) -> None:
    """After Redis restarts, the breaker stays open until its pause is over, then one trial call
    closes it and holds work again (the restarted server lost the old holds)."""
    assert (await lock.acquire(1, [1], "booking:1", TTL)).acquired
    private_redis.stop()
    await open_breaker(lock)
    private_redis.start()

    with pytest.raises(SeatLockUnavailable):
        await lock.acquire(1, [1], "booking:2", TTL)  # still within the pause: not attempted
    monotonic.now += RESET_AFTER

    assert (await lock.acquire(1, [1], "booking:2", TTL)).acquired
    assert not lock.degraded
    assert await lock.holders(1, [1, 2]) == {1: "booking:2"}
    assert (await lock.acquire(1, [1], "booking:3", TTL)).conflicts == (1,)


async def test_failed_trial_keeps_the_breaker_open(
    private_redis: RedisServer, lock: RedisSeatLock, monotonic: ManualMonotonic
) -> None:
    """A trial call while Redis is still down opens the breaker for another pause."""
    private_redis.stop()
    await open_breaker(lock)
    monotonic.now += RESET_AFTER
    with pytest.raises(SeatLockUnavailable) as caught:
        await lock.ping()
    assert caught.value.__cause__ is not None  # the trial did reach for Redis
    assert lock.breaker_state is BreakerState.OPEN
    with pytest.raises(SeatLockUnavailable) as caught:
        await lock.ping()
    assert caught.value.__cause__ is None


async def test_hung_redis_times_out_into_unavailable(
    private_redis: RedisServer, lock: RedisSeatLock
) -> None:
    """A frozen server (accepts nothing, answers nothing) ends in SeatLockUnavailable from the
    call timeout, not in a hang; after it thaws, calls work again."""
    assert (await lock.acquire(1, [1], "booking:1", TTL)).acquired
    private_redis.pause()
    try:
        with pytest.raises(SeatLockUnavailable) as caught:
            await lock.holders(1, [1])
        # the socket timeout or the call timeout, whichever fires first
        assert isinstance(caught.value.__cause__, (TimeoutError, RedisTimeoutError))
    finally:
        private_redis.resume()
    assert await lock.holders(1, [1]) == {1: "booking:1"}
    assert not lock.degraded


async def test_a_call_cut_by_its_timeout_leaves_no_late_answer_behind(
    private_redis: RedisServer,
) -> None:
    """The service's client has no socket timeout: the call timeout alone ends a call to a
    frozen server, and the connection it was cut on is dropped, so the late answer of the cut
    command never becomes the answer of a later call."""
    client = create_redis_client(private_redis.url)
    lock = RedisSeatLock(client, call_timeout=0.3)
    try:
        assert (await lock.acquire(1, [1], "booking:1", TTL)).acquired
        private_redis.pause()
        try:
            with pytest.raises(SeatLockUnavailable) as caught:
                await lock.acquire(1, [1], "booking:2", TTL)  # held: answers [1], late
            assert isinstance(caught.value.__cause__, TimeoutError)
        finally:
            private_redis.resume()
        assert (await lock.acquire(1, [2], "booking:3", TTL)).acquired
        assert await lock.holders(1, [1, 2]) == {1: "booking:1", 2: "booking:3"}
        assert await lock.release(1, [2], "booking:3") == 1
    finally:
        await client.aclose()


async def test_concurrent_holds_on_a_frozen_redis_fail_within_the_call_timeout(
    private_redis: RedisServer,
) -> None:
    """Holds asked for together against a frozen server: the first on its own connection, the
    rest in one batch. Each fails within about the call timeout, the batch's by its own
    deadline (a batched hold has no timer of its own), and holds work again once it thaws."""
    client = create_redis_client(private_redis.url)
    lock = RedisSeatLock(client, call_timeout=0.3, failure_threshold=100)
    try:
        assert (await lock.acquire(2, [1], "warm", TTL)).acquired
        private_redis.pause()
        started = time.monotonic()
        try:
            outcomes = await asyncio.gather(
                *[lock.acquire(2, [s], f"booking:{s}", TTL) for s in range(10, 20)],
                return_exceptions=True,
            )
            elapsed = time.monotonic() - started
        finally:
            private_redis.resume()
        assert all(isinstance(o, SeatLockUnavailable) for o in outcomes), outcomes
        assert {type(o.__cause__) for o in outcomes} <= {TimeoutError, RedisTimeoutError}
        assert elapsed < 1.0
        assert (await lock.acquire(2, [30], "after", TTL)).acquired
        assert await lock.holders(2, [1, 30]) == {1: "warm", 30: "after"}
    finally:
        await client.aclose()


async def test_breaker_recovers_by_itself_with_real_time(private_redis: RedisServer) -> None:
    """With the system clock the breaker re-probes after its pause: holds come back unaided."""
    client = create_redis_client(private_redis.url, socket_timeout=1.0, connect_timeout=1.0)
    lock = RedisSeatLock(client, failure_threshold=1, reset_after=0.2, call_timeout=2.0)
    try:
        private_redis.stop()
        with pytest.raises(SeatLockUnavailable):
            await lock.ping()
        assert lock.degraded
        private_redis.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while lock.degraded:
            assert loop.time() < deadline, "the breaker never closed again"
            try:
                await lock.ping()
            except SeatLockUnavailable:
                await asyncio.sleep(0.05)
        assert (await lock.acquire(1, [1], "booking:1", TTL)).acquired
    finally:
        await client.aclose()
