"""The SQL engine and error mapping on real servers: URLs, SQLite settings, outages, timeouts."""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.adapters.sql import (
    SqlIdempotencyStore,
    SqlOutboxStore,
    SqlUnitOfWorkFactory,
    create_engine,
)
from booking.adapters.sql.engine import normalise_url
from booking.adapters.sql.migrate import upgrade
from booking.ports.errors import DatabaseUnavailable
from tests.support.postgres import T0, clear_tables, make_booking


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h:5432/db", "postgresql+asyncpg://u@h:5432/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///data/booking.db", "sqlite+aiosqlite:///data/booking.db"),
        ("sqlite+aiosqlite:////abs/booking.db", "sqlite+aiosqlite:////abs/booking.db"),
    ],
)
def test_urls_are_normalised_to_the_async_drivers(given: str, expected: str) -> None:
    """Plain and async URLs of both databases select asyncpg or aiosqlite."""
    assert normalise_url(given).render_as_string(hide_password=False) == expected


def test_other_databases_are_refused_by_name() -> None:
    """An unsupported scheme is a ValueError naming it, without the password."""
    with pytest.raises(ValueError, match="mysql") as caught:
        normalise_url("mysql://user:secret@host/db")
    assert "secret" not in str(caught.value)


async def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    """A SQLite engine turns on WAL, foreign keys and a busy timeout on every connection."""
    engine = create_engine(f"sqlite:///{tmp_path / 'pragmas.db'}", sqlite_busy_timeout=3)
    try:
        async with engine.connect() as connection:
            journal = (await connection.execute(text("PRAGMA journal_mode"))).scalar()
            keys = (await connection.execute(text("PRAGMA foreign_keys"))).scalar()
            busy = (await connection.execute(text("PRAGMA busy_timeout"))).scalar()
    finally:
        await engine.dispose()
    assert (journal, keys, busy) == ("wal", 1, 3000)


async def test_an_unreachable_postgres_is_database_unavailable() -> None:
    """With nothing listening, ping, units of work and stores raise DatabaseUnavailable."""
    engine = create_engine(
        f"postgresql://postgres@127.0.0.1:{closed_port()}/booking", connect_timeout=2
    )
    try:
        uow = SqlUnitOfWorkFactory(engine)
        with pytest.raises(DatabaseUnavailable):
            await uow.ping()
        with pytest.raises(DatabaseUnavailable):
            async with uow():
                pass
        with pytest.raises(DatabaseUnavailable):
            await SqlOutboxStore(engine).claim("relay", T0, timedelta(seconds=5), 10)
        with pytest.raises(DatabaseUnavailable):
            await SqlIdempotencyStore(engine).forget("user:1", "k")
    finally:
        await engine.dispose()


async def test_a_missing_sqlite_directory_is_database_unavailable(tmp_path: Path) -> None:
    """A SQLite file that cannot be opened is DatabaseUnavailable, not a driver error."""
    engine = create_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    try:
        with pytest.raises(DatabaseUnavailable):
            await SqlUnitOfWorkFactory(engine).ping()
    finally:
        await engine.dispose()


async def test_a_statement_stuck_on_a_lock_times_out_as_unavailable(
    postgres_url: str, postgres_engine: AsyncEngine
) -> None:
    """A save blocked by another transaction's row lock ends at the command timeout."""
    await clear_tables(postgres_engine)
    holder = SqlUnitOfWorkFactory(postgres_engine)
    async with holder() as unit:
        await unit.bookings.add(make_booking(5000))
        await unit.commit()
    impatient = create_engine(postgres_url, command_timeout=0.5)
    try:
        async with holder() as locking:
            held = await locking.bookings.get(5000)
            assert held is not None
            version = held.version
            held.cancel(T0 + timedelta(seconds=1))
            await locking.bookings.save(held, version)  # row lock held until the block ends
            async with SqlUnitOfWorkFactory(impatient)() as waiting:
                other = await waiting.bookings.get(5000)
                assert other is not None
                other.cancel(T0 + timedelta(seconds=2))
                with pytest.raises(DatabaseUnavailable):
                    await waiting.bookings.save(other, version)
        # The impatient engine still works afterwards.
        await SqlUnitOfWorkFactory(impatient).ping()
    finally:
        await impatient.dispose()


async def test_sqlite_writers_take_turns_instead_of_failing(tmp_path: Path) -> None:
    """Concurrent units of work on one SQLite file queue on the write lock and all commit."""
    url = f"sqlite:///{tmp_path / 'writers.db'}"
    await upgrade(url)
    engine = create_engine(url)
    uow = SqlUnitOfWorkFactory(engine)

    async def book(n: int) -> None:
        async with uow() as unit:
            found = await unit.bookings.get(6000 + n)
            assert found is None
            await unit.bookings.add(make_booking(6000 + n, seat_ids=[n + 1]))
            await unit.commit()

    try:
        async with asyncio.timeout(60):
            await asyncio.gather(*(book(n) for n in range(8)))
        async with uow() as unit:
            claims = await unit.bookings.live_claims(7, list(range(1, 9)))
    finally:
        await engine.dispose()
    assert claims == {n + 1: 6000 + n for n in range(8)}
