"""The PostgreSQL unit of work's plain statements: transactions, claims and broken connections."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util.concurrency import greenlet_spawn

from booking.adapters.sql import (
    SqlIdempotencyStore,
    SqlOutboxStore,
    SqlUnitOfWorkFactory,
    create_engine,
)
from booking.adapters.sql import uow as uow_module
from booking.domain.booking import BookingStatus, FailureReason
from booking.ports.errors import DatabaseUnavailable, SeatsAlreadyClaimed
from booking.ports.idempotency import InFlight, Replay, Started, StoredResponse
from booking.ports.outbox import OutboxStats
from booking.ports.repository import AuditEntry, BookingWrite
from tests.contract.test_booking_write_contract import messages
from tests.support.postgres import T0, PostgresServer, clear_tables, make_booking


@pytest.fixture
async def single(postgres_url: str, postgres_engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """An engine with one pooled connection, on emptied tables."""
    await clear_tables(postgres_engine)
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0)
    yield engine
    await engine.dispose()


async def kill_backend(server: PostgresServer, driver: Any) -> None:
    """End the server process behind an asyncpg connection; waits (up to 5 s) until it is gone."""
    pid = await driver.fetchval("SELECT pg_backend_pid()")
    admin = await server.admin()
    try:
        await admin.execute("SELECT pg_terminate_backend($1, 5000)", pid)
    finally:
        await admin.close()


async def test_read_only_block_opens_no_transaction_and_a_write_does(single: AsyncEngine) -> None:
    """Reads before any write run without BEGIN; the first write opens the block's transaction."""
    uow = SqlUnitOfWorkFactory(single)
    async with uow() as tx:
        await tx.bookings.add(make_booking(1))
        await tx.commit()
    async with uow() as tx:
        driver = await tx.driver(write=False)
        assert await tx.bookings.get(1) is not None
        assert not driver.is_in_transaction()
        await tx.bookings.add(make_booking(2, seat_ids=[3]))
        assert driver.is_in_transaction()
        # Reads after a write see the block's own uncommitted rows.
        assert await tx.bookings.get(2) is not None
    async with uow() as tx:
        assert await tx.bookings.get(2) is None  # left without commit: rolled back


async def test_taken_seats_are_named_and_the_block_goes_on(single: AsyncEngine) -> None:
    """A conflicting add names exactly the taken seats, leaves no row, and the block commits."""
    uow = SqlUnitOfWorkFactory(single)
    async with uow() as tx:
        await tx.bookings.add(make_booking(1, seat_ids=[1, 2, 3]))
        await tx.commit()
    async with uow() as tx:
        with pytest.raises(SeatsAlreadyClaimed) as raised:
            await tx.bookings.add(make_booking(2, seat_ids=[9, 3, 1, 8]))
        assert raised.value.seat_ids == [1, 3]
        await tx.bookings.add(make_booking(3, seat_ids=[9, 8]))
        entry = AuditEntry(3, "user:1", T0, None, BookingStatus.PENDING, None)
        await tx.audit.record(entry)
        await tx.commit()
    async with uow() as tx:
        assert await tx.bookings.get(2) is None
        third = await tx.bookings.get(3)
        assert third is not None
        assert [seat.seat_id for seat in third.seats] == [9, 8]
        assert await tx.audit.trail(3) == [entry]


@pytest.mark.parametrize("after_write", [False, True], ids=["reading", "writing"])
async def test_connection_killed_under_a_plain_statement(
    single: AsyncEngine, postgres_server: PostgresServer, after_write: bool
) -> None:
    """A backend killed mid-block answers DatabaseUnavailable and the pool replaces it."""
    uow = SqlUnitOfWorkFactory(single)
    async with uow() as tx:
        await tx.bookings.add(make_booking(1))
        await tx.commit()
    async with uow() as tx:
        if after_write:
            await tx.bookings.add(make_booking(2, seat_ids=[5]))
        driver = await tx.driver(write=False)
        await kill_backend(postgres_server, driver)
        with pytest.raises(DatabaseUnavailable):
            await tx.bookings.get(1)
    async with uow() as tx:
        assert await tx.bookings.get(1) is not None
        assert await tx.bookings.get(2) is None


async def test_a_booking_write_is_one_statement_without_a_transaction(single: AsyncEngine) -> None:
    """`write` sends one statement and nothing else (no BEGIN, no COMMIT); it is durable."""
    uow = SqlUnitOfWorkFactory(single)
    # The first statements of a connection make asyncpg read the array types once.
    await uow.write(BookingWrite(make_booking(9, seat_ids=[9]), expected_version=None))
    async with uow() as tx:
        driver = await tx.driver(write=False)
    sent: list[str] = []

    def log(record: Any) -> None:
        sent.append(record.query)

    driver.add_query_logger(log)
    try:
        booking = make_booking(1)
        entry = AuditEntry(1, "user:1", T0, None, BookingStatus.PENDING, None)
        await uow.write(BookingWrite(booking, expected_version=None, audit=entry))
        version = booking.version
        booking.fail(FailureReason.PAYMENT_INIT_FAILED, T0)
        await uow.write(BookingWrite(booking, version, release_claims=True))
        assert await uow.get(1) == booking
        await asyncio.sleep(0)  # asyncpg calls query loggers soon after, not at once
    finally:
        driver.remove_query_logger(log)
    assert len(sent) == 3
    assert all(query.lstrip().startswith("WITH") for query in sent[:2])
    assert sent[2].lstrip().startswith("SELECT")
    assert not driver.is_in_transaction()
    assert single.sync_engine.pool.checkedout() == 0
    async with uow() as tx:
        stored = await tx.bookings.get(1)
        assert await tx.audit.trail(1) == [entry]
        assert await tx.bookings.live_claims(7, [1, 2]) == {}
    assert stored == booking


async def test_a_connection_killed_under_a_write_is_replaced(
    single: AsyncEngine, postgres_engine: AsyncEngine, postgres_server: PostgresServer
) -> None:
    """A backend killed while its write waits answers DatabaseUnavailable, stores nothing, and
    the next write gets a new connection."""
    uow = SqlUnitOfWorkFactory(single)
    async with SqlUnitOfWorkFactory(postgres_engine)() as blocker:
        # An uncommitted booking 1: a write of the same id waits for this transaction.
        await blocker.bookings.add(make_booking(1, seat_ids=[1]))
        waiting = asyncio.create_task(
            uow.write(BookingWrite(make_booking(1, seat_ids=[2]), expected_version=None))
        )
        admin = await postgres_server.admin()
        try:
            pid = None
            for _ in range(500):
                pid = await admin.fetchval(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = $1",
                    single.url.database,
                )
                if pid is not None:
                    break
                await asyncio.sleep(0.01)
            assert pid is not None, "the write never waited"
            await admin.execute("SELECT pg_terminate_backend($1, 5000)", pid)
        finally:
            await admin.close()
        with pytest.raises(DatabaseUnavailable):
            await waiting
    await uow.write(BookingWrite(make_booking(2, seat_ids=[2]), expected_version=None))
    async with uow() as tx:
        assert await tx.bookings.get(1) is None
        assert await tx.bookings.live_claims(7, [1, 2]) == {2: 2}


async def test_a_connection_killed_before_a_lone_get_is_replaced(
    single: AsyncEngine, postgres_server: PostgresServer
) -> None:
    """`get` on a connection whose backend is gone answers DatabaseUnavailable; the pool opens
    a new one for the next call, which reads the booking."""
    uow = SqlUnitOfWorkFactory(single)
    await uow.write(BookingWrite(make_booking(1), expected_version=None))
    async with uow() as tx:
        driver = await tx.driver(write=False)
    await kill_backend(postgres_server, driver)  # while the connection waits in the pool
    with pytest.raises(DatabaseUnavailable):
        await uow.get(1)
    assert single.sync_engine.pool.checkedout() == 0
    assert await uow.get(1) == make_booking(1)


async def test_a_lone_get_waits_for_a_free_connection(postgres_url: str) -> None:
    """With every connection in use, `get` and `write` wait for one (up to the pool timeout,
    then DatabaseUnavailable) instead of opening more."""
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0, pool_timeout=0.3)
    uow = SqlUnitOfWorkFactory(engine)
    try:
        async with uow():
            with pytest.raises(DatabaseUnavailable):
                await uow.get(1)
            with pytest.raises(DatabaseUnavailable):
                await uow.write(BookingWrite(make_booking(99_001), expected_version=None))
            waiting = asyncio.create_task(uow.get(99_001))
            await asyncio.sleep(0.05)
            assert not waiting.done()
        assert await waiting is None
        assert engine.sync_engine.pool.checkedout() == 0
    finally:
        await engine.dispose()


async def test_a_refused_connection_is_database_unavailable(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """A server that refuses the connection (too many connections for the role) makes `get`,
    `write` and a unit of work answer DatabaseUnavailable, never the driver's own error."""
    admin = await postgres_server.admin()
    role = "booking_no_connections"
    try:
        await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 0")
        url = make_url(postgres_url).set(username=role, password=None)
        engine = create_engine(url, pool_size=1, max_overflow=0)
        uow = SqlUnitOfWorkFactory(engine)
        try:
            with pytest.raises(DatabaseUnavailable, match="connect"):
                await uow.get(1)
            with pytest.raises(DatabaseUnavailable, match="connect"):
                await uow.write(BookingWrite(make_booking(1), expected_version=None))
            with pytest.raises(DatabaseUnavailable):
                async with uow():
                    pass
        finally:
            await engine.dispose()
    finally:
        await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.close()


async def test_get_and_write_use_the_engines_pool_after_a_dispose(single: AsyncEngine) -> None:
    """`engine.dispose()` replaces the pool; the plain statements take the new one."""
    uow = SqlUnitOfWorkFactory(single)
    await uow.write(BookingWrite(make_booking(1), expected_version=None))
    old = single.sync_engine.pool
    await single.dispose()
    assert single.sync_engine.pool is not old
    assert await uow.get(1) == make_booking(1)
    await uow.write(BookingWrite(make_booking(2, seat_ids=[5]), expected_version=None))
    assert single.sync_engine.pool.checkedin() == 1
    assert old.checkedin() == 0


@pytest.mark.filterwarnings(
    "error::pytest.PytestUnraisableExceptionWarning", "error::RuntimeWarning"
)
async def test_an_idle_connection_is_taken_without_a_greenlet(
    single: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an idle connection in the pool, `get` and `write` check it out without SQLAlchemy's
    greenlet (making one costs more than the rest of the checkout). One invalidated while idle
    is opened again in a greenlet, as SQLAlchemy does it, and nothing warns."""
    uow = SqlUnitOfWorkFactory(single)
    await uow.write(BookingWrite(make_booking(1), expected_version=None))  # opens the connection
    spawned: list[Callable[..., Any]] = []

    async def counted(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        spawned.append(fn)
        return await greenlet_spawn(fn, *args, **kwargs)

    monkeypatch.setattr(uow_module, "greenlet_spawn", counted)
    assert await uow.get(1) == make_booking(1)
    await uow.write(BookingWrite(make_booking(2, seat_ids=[5]), expected_version=None))
    assert spawned == []

    pool = single.sync_engine.pool
    fairy = await greenlet_spawn(pool.connect)
    await greenlet_spawn(fairy.invalidate)  # closes the connection; the record waits empty
    await greenlet_spawn(fairy.close)
    assert pool.checkedin() == 1
    assert await uow.get(2) == make_booking(2, seat_ids=[5])
    assert len(spawned) == 1  # the checkout again, in a greenlet, which opened a connection
    assert pool.checkedin() == 1
    gc.collect()  # a dropped coroutine would warn now


async def test_a_new_idempotency_key_is_claimed_and_answered_in_one_statement_each(
    single: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a key not seen before is claimed, answered and forgotten by one plain
    statement each (no transaction, no greenlet); a key already there goes through the
    transaction, which answers from the row."""
    store = SqlIdempotencyStore(single)
    await SqlUnitOfWorkFactory(single).get(1)  # opens the pool's one connection
    spawned: list[Callable[..., Any]] = []

    async def counted(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        spawned.append(fn)
        return await greenlet_spawn(fn, *args, **kwargs)

    monkeypatch.setattr(uow_module, "greenlet_spawn", counted)
    begun: list[object] = []
    event.listen(single.sync_engine, "begin", begun.append)
    hour = timedelta(hours=1)
    answer = StoredResponse(status_code=201, body=b"{}", resource_id=7)
    assert await store.begin("user:1", "fresh", "fp", T0, hour) == Started()
    await store.complete("user:1", "fresh", answer, T0, hour)
    assert await store.begin("user:1", "other", "fp", T0, hour) == Started()
    await store.forget("user:1", "other")
    assert (spawned, begun) == ([], [])
    assert await store.begin("user:1", "fresh", "fp", T0, hour) == Replay(answer)
    assert len(begun) == 1
    assert await store.begin("user:1", "other", "fp", T0, hour) == Started()
    assert await store.begin("user:1", "other", "fp", T0, hour) == InFlight()
    assert len(begun) == 2


async def test_the_relays_marks_are_one_statement_each(single: AsyncEngine) -> None:
    """On PostgreSQL `mark_sent` and `mark_retry` open no transaction; each still touches only
    the owner's unsent row."""
    uow = SqlUnitOfWorkFactory(single)
    store = SqlOutboxStore(single)
    rows = messages(1, 2)
    await uow.write(BookingWrite(make_booking(1), expected_version=None, messages=rows))
    claimed = await store.claim("relay-a", T0 + timedelta(minutes=1), timedelta(seconds=30), 10)
    assert [row.message_id for row in claimed] == [row.message_id for row in rows]
    begun: list[object] = []
    event.listen(single.sync_engine, "begin", begun.append)
    later = T0 + timedelta(minutes=2)
    await store.mark_sent(rows[0].message_id, "relay-b", later)  # not the owner: no change
    await store.mark_sent(rows[0].message_id, "relay-a", later)
    await store.mark_retry(rows[1].message_id, "relay-a", "broker away", later)
    await store.mark_retry(rows[0].message_id, "relay-a", "too late", later)  # sent: no change
    assert begun == []
    assert await store.stats() == OutboxStats(1, 1, rows[1].created_at)
    again = await store.claim("relay-c", later, timedelta(seconds=30), 10)
    assert [(row.message_id, row.attempts, row.last_error) for row in again] == [
        (rows[1].message_id, 1, "broker away")
    ]
