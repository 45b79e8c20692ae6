"""Test fixtures: a fresh PostgreSQL database per session, a SQLite file, and the storage backends.

`storage` runs a test once per backend (memory, sqlite, postgres) with clean tables; the SQL
databases are migrated with the packaged Alembic migrations, as `booking migrate` would.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.adapters.memory.database import (
    MemoryDatabase,
    MemoryIdempotencyStore,
    MemoryOutboxStore,
    MemoryUnitOfWorkFactory,
)
from booking.adapters.sql import (
    SqlIdempotencyStore,
    SqlOutboxStore,
    SqlUnitOfWorkFactory,
    create_engine,
)
from booking.adapters.sql.migrate import upgrade
from booking.adapters.sql.tables import metadata
from booking.domain.booking import Booking, PaymentSession, Seat, SeatType
from booking.domain.money import Money
from booking.ports.idempotency import IdempotencyStore
from booking.ports.outbox import OutboxStore
from booking.ports.repository import UnitOfWorkFactory

POSTGRES_HOST = os.environ.get("BOOKING_TEST_POSTGRES_HOST", "127.0.0.1")
POSTGRES_PORT = int(os.environ.get("BOOKING_TEST_POSTGRES_PORT", "5432"))
# Trust authentication on the local server: the first of these roles that exists is used.
POSTGRES_USERS = tuple(os.environ.get("BOOKING_TEST_POSTGRES_USERS", "postgres,root").split(","))
STORAGE_BACKENDS = ("memory", "sqlite", "postgres")


@dataclass(frozen=True, slots=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    async def admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            host=self.host, port=self.port, user=self.user, database="postgres", timeout=5
        )

    async def _execute(self, statement: str) -> None:
        admin = await self.admin()
        try:
            await admin.execute(statement)
        finally:
            await admin.close()

    @contextlib.asynccontextmanager
    async def database(self, prefix: str) -> AsyncIterator[str]:
        """A brand-new empty database named `<prefix>_<random>`, dropped on the way out."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        await self._execute(f'CREATE DATABASE "{name}"')
        try:
            yield self.url(name)
        finally:
            await self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _find_server() -> PostgresServer:
    errors = []
    for user in POSTGRES_USERS:
        server = PostgresServer(POSTGRES_HOST, POSTGRES_PORT, user.strip())
        try:
            connection = await server.admin()
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            errors.append(f"as {user}: {exc!r}")
            continue
        await connection.close()
        return server
    pytest.fail(
        f"PostgreSQL is not reachable at {POSTGRES_HOST}:{POSTGRES_PORT} with trust "
        f"authentication ({'; '.join(errors)}). Start it (`make services`) or set "
        "BOOKING_TEST_POSTGRES_HOST / _PORT / _USERS.",
        pytrace=False,
    )


@pytest.fixture(scope="session")
async def postgres_server() -> PostgresServer:
    """The local PostgreSQL server; fails the run loudly when it does not answer."""
    return await _find_server()


@pytest.fixture(scope="session")
async def postgres_url(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """A database of its own for this test session, migrated to head, dropped at the end."""
    async with postgres_server.database("booking_test") as url:
        await upgrade(url)
        yield url


@pytest.fixture
async def empty_postgres_url(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """A brand-new empty database (no tables), dropped after the test."""
    async with postgres_server.database("booking_empty") as url:
        yield url


@pytest.fixture(scope="session")
async def postgres_engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the session's PostgreSQL database."""
    engine = create_engine(postgres_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite file for this test session, migrated to head."""
    path: Path = tmp_path_factory.mktemp("sqlite") / "booking.db"
    url = f"sqlite:///{path}"
    await upgrade(url)
    return url


@pytest.fixture(scope="session")
async def sqlite_engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the session's SQLite file."""
    engine = create_engine(sqlite_url)
    yield engine
    await engine.dispose()


async def clear_tables(engine: AsyncEngine) -> None:
    """Delete every row of the booking schema (children first)."""
    async with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            await connection.execute(delete(table))


@dataclass(frozen=True, slots=True)
class Storage:
    """One storage backend: the unit of work, outbox store and idempotency store on it."""

    name: str
    uow: UnitOfWorkFactory
    outbox: OutboxStore
    idempotency: IdempotencyStore
    engine: AsyncEngine | None = None

    @property
    def concurrent(self) -> bool:
        """Whether two units of work may be open at once (memory holds one lock per unit)."""
        return self.engine is not None


def sql_storage(name: str, engine: AsyncEngine) -> Storage:
    return Storage(
        name=name,
        uow=SqlUnitOfWorkFactory(engine),
        outbox=SqlOutboxStore(engine),
        idempotency=SqlIdempotencyStore(engine),
        engine=engine,
    )


@pytest.fixture
async def _clear_sqlite(sqlite_engine: AsyncEngine) -> None:
    await clear_tables(sqlite_engine)


@pytest.fixture
async def _clear_postgres(postgres_engine: AsyncEngine) -> None:
    await clear_tables(postgres_engine)


@pytest.fixture(params=STORAGE_BACKENDS)
def storage(request: pytest.FixtureRequest) -> Storage:
    """Each storage backend in turn, with no rows in it."""
    if request.param == "memory":
        db = MemoryDatabase()
        return Storage(
            name="memory",
            uow=MemoryUnitOfWorkFactory(db),
            outbox=MemoryOutboxStore(db),
            idempotency=MemoryIdempotencyStore(),
        )
    engine: AsyncEngine = request.getfixturevalue(f"{request.param}_engine")
    request.getfixturevalue(f"_clear_{request.param}")
    return sql_storage(request.param, engine)


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOLD = timedelta(minutes=5)


def make_booking(
    booking_id: int,
    *,
    user_id: int = 1,
    show_id: int = 7,
    seat_ids: Sequence[int] = (1, 2),
    now: datetime = T0,
    hold: timedelta = HOLD,
) -> Booking:
    """A new PENDING booking of these seats (GOLD, 250.00 + 1.00 per seat id)."""
    seats = [
        Seat(seat_id, f"R-{seat_id}", SeatType.GOLD, Money(250_00 + 100 * seat_id))
        for seat_id in seat_ids
    ]
    return Booking.open(
        booking_id=booking_id,
        user_id=user_id,
        show_id=show_id,
        seats=seats,
        hold_expires_at=now + hold,
        now=now,
    )


def session_for(booking: Booking, now: datetime = T0) -> PaymentSession:
    return PaymentSession(
        session_id=f"cs_{booking.booking_id}",
        url=f"https://pay.example/checkout/cs_{booking.booking_id}",
        expires_at=now + timedelta(minutes=30),
    )
