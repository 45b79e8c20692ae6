"""PostgreSQL as the arbiter under real concurrency: claims, conditional updates, leases."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.adapters.sql import SqlUnitOfWorkFactory, create_engine
from booking.domain.booking import Booking, BookingStatus, FailureReason
from booking.ports.errors import SeatsAlreadyClaimed, StaleBooking
from tests.support.postgres import T0, clear_tables, make_booking, session_for

RACERS = 50
# Every racer holds one connection while it waits for the others: the pool must fit them all.
POOL = RACERS + 2


@pytest.fixture
async def racing(postgres_url: str, postgres_engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """An engine with a connection per racer, on emptied tables."""
    await clear_tables(postgres_engine)
    engine = create_engine(postgres_url, pool_size=POOL, max_overflow=0, pool_timeout=30)
    yield engine
    await engine.dispose()


class Barrier:
    """Releases every racer once all have opened their transaction (bounded by a timeout)."""

    def __init__(self, parties: int) -> None:
        self._parties = parties
        self._arrived = 0
        self._all_in = asyncio.Event()

    async def wait(self) -> None:
        self._arrived += 1
        if self._arrived == self._parties:
            self._all_in.set()
        async with asyncio.timeout(60):
            await self._all_in.wait()


async def race(tasks: list[Callable[[], Awaitable[object]]]) -> list[object]:
    """Run the tasks at once; answer each one's result or the exception it raised."""
    async with asyncio.timeout(120):
        return await asyncio.gather(*(task() for task in tasks), return_exceptions=True)


async def test_overlapping_claims_have_exactly_one_winner_per_seat(racing: AsyncEngine) -> None:
    """50 transactions on overlapping seats: disjoint winners, the rest SeatsAlreadyClaimed."""
    uow = SqlUnitOfWorkFactory(racing)
    rng = random.Random(20260301)
    bookings = [
        make_booking(1000 + n, seat_ids=rng.sample(range(1, 31), rng.randint(1, 4)))
        for n in range(RACERS)
    ]
    barrier = Barrier(RACERS)

    def claim(booking: Booking) -> Callable[[], Awaitable[object]]:
        async def run() -> object:
            async with uow() as unit:
                await barrier.wait()
                await unit.bookings.add(booking)
                await unit.commit()
            return booking.booking_id

        return run

    results = await race([claim(b) for b in bookings])

    unexpected = [r for r in results if isinstance(r, BaseException)]
    unexpected = [r for r in unexpected if not isinstance(r, SeatsAlreadyClaimed)]
    assert unexpected == []
    winners = [b for b, r in zip(bookings, results, strict=True) if r == b.booking_id]
    losers = [
        (b, r) for b, r in zip(bookings, results, strict=True) if isinstance(r, SeatsAlreadyClaimed)
    ]
    assert winners
    assert losers
    assert len(winners) + len(losers) == RACERS
    async with uow() as unit:
        claims = await unit.bookings.live_claims(7, list(range(1, 31)))
        stored = {b.booking_id for b in bookings if await unit.bookings.get(b.booking_id)}
    owner_of: dict[int, int] = {}
    for booking in winners:
        for seat in booking.seat_ids:
            assert seat not in owner_of, f"seat {seat} won twice"
            owner_of[seat] = booking.booking_id
    assert claims == owner_of
    assert stored == {b.booking_id for b in winners}
    for booking, error in losers:
        assert error.seat_ids, "a conflict names its seats"
        assert set(error.seat_ids) <= set(booking.seat_ids)
        # Each named seat belongs to a booking that won, never to another loser.
        assert all(seat in owner_of for seat in error.seat_ids)


async def test_the_same_seats_wanted_by_all_are_won_once(racing: AsyncEngine) -> None:
    """50 transactions claiming the same three seats: one winner, 49 SeatsAlreadyClaimed."""
    uow = SqlUnitOfWorkFactory(racing)
    barrier = Barrier(RACERS)

    def claim(booking_id: int) -> Callable[[], Awaitable[object]]:
        async def run() -> object:
            # Each racer lists the seats in its own order (the adapter inserts them sorted).
            seats = [1, 2, 3]
            random.Random(booking_id).shuffle(seats)
            async with uow() as unit:
                await barrier.wait()
                await unit.bookings.add(make_booking(booking_id, seat_ids=seats))
                await unit.commit()
            return booking_id

        return run

    results = await race([claim(2000 + n) for n in range(RACERS)])
    winners = [r for r in results if isinstance(r, int)]
    conflicts = [r for r in results if isinstance(r, SeatsAlreadyClaimed)]
    assert len(winners) == 1
    assert len(conflicts) == RACERS - 1
    assert all(c.seat_ids == [1, 2, 3] for c in conflicts)
    async with uow() as unit:
        assert await unit.bookings.live_claims(7, [1, 2, 3]) == dict.fromkeys([1, 2, 3], winners[0])


async def test_concurrent_saves_of_one_version_have_one_winner(racing: AsyncEngine) -> None:
    """Confirm and fail paths racing on one booking version: one wins, the rest StaleBooking."""
    uow = SqlUnitOfWorkFactory(racing)
    booking = make_booking(3000)
    version = booking.version
    booking.attach_payment(session_for(booking), T0 + timedelta(seconds=1))
    async with uow() as unit:
        await unit.bookings.add(make_booking(3000))
        await unit.bookings.save(booking, version)
        await unit.commit()
    racers = 10
    barrier = Barrier(racers)

    def settle(n: int) -> Callable[[], Awaitable[object]]:
        async def run() -> object:
            async with uow() as unit:
                mine = await unit.bookings.get(3000)
                assert mine is not None
                read_version = mine.version
                await barrier.wait()
                if n % 2:
                    mine.confirm(T0 + timedelta(minutes=1))
                else:
                    mine.fail(FailureReason.PAYMENT_FAILED, T0 + timedelta(minutes=1))
                await unit.bookings.save(mine, read_version)
                await unit.commit()
            return mine.status

        return run

    results = await race([settle(n) for n in range(racers)])
    won = [r for r in results if isinstance(r, BookingStatus)]
    stale = [r for r in results if isinstance(r, StaleBooking)]
    assert len(won) == 1
    assert len(stale) == racers - 1
    async with uow() as unit:
        stored = await unit.bookings.get(3000)
    assert stored is not None
    assert stored.status is won[0]
    assert stored.version == booking.version + 1


async def test_replicas_claiming_due_bookings_skip_each_others_rows(racing: AsyncEngine) -> None:
    """A second claim_due skips rows the first is claiming, without waiting, and leases hold."""
    uow = SqlUnitOfWorkFactory(racing)
    async with uow() as unit:
        for n in range(3):
            await unit.bookings.add(make_booking(4000 + n, seat_ids=[n + 1], now=T0))
        await unit.commit()
    before, now, lease = T0 + timedelta(minutes=10), T0 + timedelta(minutes=6), timedelta(minutes=1)
    async with uow() as first:
        mine = await first.bookings.claim_due(before, now, lease, 2)
        async with uow() as second, asyncio.timeout(10):
            theirs = await second.bookings.claim_due(before, now, lease, 10)
            await second.commit()
        await first.commit()
    async with uow() as third:
        again = await third.bookings.claim_due(before, now, lease, 10)
    assert [b.booking_id for b in mine] == [4000, 4001]
    assert [b.booking_id for b in theirs] == [4002]
    assert again == []
