"""The SeatLock contract, run on the in-process adapter and on Redis."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from booking.adapters.memory.seat_lock import MemorySeatLock
from booking.adapters.redis.seat_lock import RedisSeatLock, create_redis_client
from booking.adapters.system import SystemClock
from booking.ports.seat_lock import HoldOutcome, SeatLock

LONG = timedelta(minutes=5)
SHORT = timedelta(milliseconds=150)

_show_ids = itertools.count(random.randrange(1_000_000, 2_000_000) * 1000)


@pytest.fixture(params=["memory", "redis"])
async def seat_lock(request: pytest.FixtureRequest) -> AsyncIterator[SeatLock]:
    if request.param == "memory":
        yield MemorySeatLock(SystemClock())
        return
    redis_url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_key_prefix")
    # Roomy timeouts: the 200-way race opens many connections at once on a small, busy machine.
    client = create_redis_client(redis_url, socket_timeout=2.0, connect_timeout=2.0)
    yield RedisSeatLock(client, key_prefix=f"{prefix}:contract", call_timeout=5.0)
    await client.aclose()


@pytest.fixture
def show() -> int:
    return next(_show_ids)


async def wait_until_free(lock: SeatLock, show: int, seats: list[int], limit: float = 5.0) -> None:
    """Poll `holders` until the seats are free; fails after `limit` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while await lock.holders(show, seats):
        assert loop.time() < deadline, f"holds on {seats} did not expire"
        await asyncio.sleep(0.02)


async def test_acquire_free_seats_holds_them_all(seat_lock: SeatLock, show: int) -> None:
    """Free seats are all held by the owner after one acquire."""
    outcome = await seat_lock.acquire(show, [1, 2, 3], "booking:1", LONG)
    assert outcome == HoldOutcome(acquired=True)
    assert await seat_lock.holders(show, [1, 2, 3]) == {
        1: "booking:1",
        2: "booking:1",
        3: "booking:1",
    }


async def test_acquire_is_all_or_nothing(seat_lock: SeatLock, show: int) -> None:
    """One taken seat refuses the whole request and holds none of the free ones."""
    await seat_lock.acquire(show, [2], "booking:1", LONG)
    outcome = await seat_lock.acquire(show, [1, 2, 3], "booking:2", LONG)
    assert outcome == HoldOutcome(acquired=False, conflicts=(2,))
    assert await seat_lock.holders(show, [1, 2, 3]) == {2: "booking:1"}


async def test_conflicts_name_every_seat_held_by_others(seat_lock: SeatLock, show: int) -> None:
    """Conflicts list each seat another owner holds, whoever holds it, and no free seat."""
    await seat_lock.acquire(show, [1], "booking:1", LONG)
    await seat_lock.acquire(show, [3], "booking:2", LONG)
    outcome = await seat_lock.acquire(show, [1, 2, 3, 4], "booking:3", LONG)
    assert not outcome.acquired
    assert sorted(outcome.conflicts) == [1, 3]


async def test_holds_are_per_show(seat_lock: SeatLock, show: int) -> None:
    """The same seat id in another show is another seat."""
    await seat_lock.acquire(show, [1], "booking:1", LONG)
    assert (await seat_lock.acquire(show + 1, [1], "booking:2", LONG)).acquired
    assert await seat_lock.holders(show, [1]) == {1: "booking:1"}
    assert await seat_lock.holders(show + 1, [1]) == {1: "booking:2"}


async def test_same_owner_reacquire_succeeds_and_refreshes_ttl(
    seat_lock: SeatLock, show: int
) -> None:
    """Re-acquiring own seats (plus a free one) succeeds and re-arms the TTL of all of them."""
    await seat_lock.acquire(show, [1, 2], "booking:1", SHORT)
    outcome = await seat_lock.acquire(show, [2, 1, 3], "booking:1", LONG)
    assert outcome.acquired
    await asyncio.sleep(SHORT.total_seconds() * 3)
    assert await seat_lock.holders(show, [1, 2, 3]) == {
        1: "booking:1",
        2: "booking:1",
        3: "booking:1",
    }


async def test_release_removes_only_own_holds(seat_lock: SeatLock, show: int) -> None:
    """Release by another owner removes nothing; the owner's release counts what it removed."""
    await seat_lock.acquire(show, [1, 2], "booking:1", LONG)
    await seat_lock.acquire(show, [3], "booking:2", LONG)
    assert await seat_lock.release(show, [1, 2], "booking:2") == 0
    assert await seat_lock.holders(show, [1, 2, 3]) == {
        1: "booking:1",
        2: "booking:1",
        3: "booking:2",
    }
    assert await seat_lock.release(show, [1, 2, 3, 4], "booking:1") == 2
    assert await seat_lock.holders(show, [1, 2, 3, 4]) == {3: "booking:2"}
    assert await seat_lock.release(show, [1, 2], "booking:1") == 0


async def test_released_seats_can_be_taken_by_another_owner(seat_lock: SeatLock, show: int) -> None:
    """After release the seats are free for the next booking."""
    await seat_lock.acquire(show, [1, 2], "booking:1", LONG)
    await seat_lock.release(show, [1, 2], "booking:1")
    assert (await seat_lock.acquire(show, [1, 2], "booking:2", LONG)).acquired


async def test_extend_by_owner_keeps_holds_past_their_first_ttl(
    seat_lock: SeatLock, show: int
) -> None:
    """Extend answers True when the owner holds every seat, and the holds outlive the old TTL."""
    await seat_lock.acquire(show, [1, 2], "booking:1", SHORT)
    assert await seat_lock.extend(show, [1, 2], "booking:1", LONG)
    await asyncio.sleep(SHORT.total_seconds() * 3)
    assert await seat_lock.holders(show, [1, 2]) == {1: "booking:1", 2: "booking:1"}


async def test_extend_never_touches_another_owners_hold(seat_lock: SeatLock, show: int) -> None:
    """Extend by a non-owner answers False and leaves the owner's TTL as it was."""
    await seat_lock.acquire(show, [1], "booking:1", SHORT)
    assert not await seat_lock.extend(show, [1], "booking:2", LONG)
    await wait_until_free(seat_lock, show, [1])


async def test_extend_partial_extends_own_seats_and_answers_false(
    seat_lock: SeatLock, show: int
) -> None:
    """With one seat free and one held by another, extend answers False, keeps the owner's own
    seats, takes neither of the others, and leaves the other owner's TTL alone."""
    await seat_lock.acquire(show, [1], "booking:1", SHORT)
    await seat_lock.acquire(show, [3], "booking:2", SHORT)
    assert not await seat_lock.extend(show, [1, 2, 3], "booking:1", LONG)
    await asyncio.sleep(SHORT.total_seconds() * 3)
    await wait_until_free(seat_lock, show, [3])
    assert await seat_lock.holders(show, [1, 2, 3]) == {1: "booking:1"}


async def test_hold_expires_after_its_ttl(seat_lock: SeatLock, show: int) -> None:
    """A hold disappears by itself after its TTL and the seat can then be taken by another."""
    await seat_lock.acquire(show, [1, 2], "booking:1", SHORT)
    await wait_until_free(seat_lock, show, [1, 2])
    assert (await seat_lock.acquire(show, [1, 2], "booking:2", LONG)).acquired
    assert await seat_lock.holders(show, [1, 2]) == {1: "booking:2", 2: "booking:2"}


async def test_expired_hold_is_not_released_or_extended(seat_lock: SeatLock, show: int) -> None:
    """After expiry the former owner has nothing to release or extend."""
    await seat_lock.acquire(show, [1], "booking:1", SHORT)
    await wait_until_free(seat_lock, show, [1])
    assert await seat_lock.release(show, [1], "booking:1") == 0
    assert not await seat_lock.extend(show, [1], "booking:1", LONG)
    assert await seat_lock.holders(show, [1]) == {}


async def test_holders_lists_only_held_seats(seat_lock: SeatLock, show: int) -> None:
    """Free seats are absent from holders; each held seat maps to its owner."""
    assert await seat_lock.holders(show, [1, 2, 3]) == {}
    await seat_lock.acquire(show, [2], "booking:7", LONG)
    assert await seat_lock.holders(show, [1, 2, 3]) == {2: "booking:7"}


async def test_empty_seat_lists_change_nothing(seat_lock: SeatLock, show: int) -> None:
    """No seats: acquire and extend trivially succeed, release removes none, holders is empty."""
    assert (await seat_lock.acquire(show, [], "booking:1", LONG)).acquired
    assert await seat_lock.extend(show, [], "booking:1", LONG)
    assert await seat_lock.release(show, [], "booking:1") == 0
    assert await seat_lock.holders(show, []) == {}


async def test_ping_answers_when_the_store_is_up(seat_lock: SeatLock) -> None:
    """ping returns quietly while the store is reachable."""
    await seat_lock.ping()


async def test_concurrent_overlapping_acquires_have_disjoint_winners(
    seat_lock: SeatLock, show: int
) -> None:
    """200 concurrent acquires of overlapping seat sets: winners are disjoint, each holds exactly
    its seats, and every loser names a seat a winner holds and holds nothing itself."""
    rng = random.Random(1234)
    seats = list(range(1, 41))
    requests = {f"booking:{n}": rng.sample(seats, rng.randint(1, 4)) for n in range(200)}

    outcomes = await asyncio.gather(
        *(seat_lock.acquire(show, wanted, owner, LONG) for owner, wanted in requests.items())
    )
    results = dict(zip(requests, outcomes, strict=True))

    winners = {owner: set(requests[owner]) for owner, out in results.items() if out.acquired}
    assert winners
    taken: set[int] = set()
    for wanted in winners.values():
        assert not (taken & wanted), "two winners hold one seat"
        taken |= wanted
    holders = await seat_lock.holders(show, seats)
    assert holders == {seat: owner for owner, wanted in winners.items() for seat in wanted}
    for owner, out in results.items():
        if not out.acquired:
            assert out.conflicts
            assert set(out.conflicts) <= set(requests[owner])
            assert all(holders[seat] != owner for seat in out.conflicts)
