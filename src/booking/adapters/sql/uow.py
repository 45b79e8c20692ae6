"""SQL UnitOfWork: one connection and one short transaction per block."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, Self

from sqlalchemy import text
from sqlalchemy.exc import MissingGreenlet
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import Pool, QueuePool
from sqlalchemy.util.concurrency import greenlet_spawn

from booking.adapters.sql.engine import is_postgres
from booking.adapters.sql.errors import database_errors
from booking.adapters.sql.repository import (
    SqlAuditLog,
    SqlBookingRepository,
    SqlOutbox,
    get_plain,
    write_plain,
)
from booking.domain.booking import Booking
from booking.ports.outbox import Outbox
from booking.ports.repository import AuditLog, BookingRepository, BookingWrite, stage_write


class SqlUnitOfWork:
    """The UnitOfWork port: leaving the block without `commit` rolls back.

    After `commit` or `rollback` the block may go on: the next statement starts a new
    transaction, which the end of the block rolls back unless committed."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None
        # PostgreSQL: the pooled asyncpg connection and SQLAlchemy's adapter around it, for the
        # hot statements that skip SQLAlchemy's compile and result layers (see `driver`).
        self._driver: Any = None
        self._adapter: Any = None
        self._repository = SqlBookingRepository(self)
        # Typed as the ports: the Protocol's attributes are mutable, hence invariant.
        self.bookings: BookingRepository = self._repository
        self.outbox: Outbox = SqlOutbox(self)
        self.audit: AuditLog = SqlAuditLog(self)

    @property
    def connection(self) -> AsyncConnection:
        if self._connection is None:
            raise RuntimeError("use the unit of work inside `async with`")
        return self._connection

    async def __aenter__(self) -> Self:
        if self._connection is not None:
            raise RuntimeError("a unit of work is not re-entrant")
        with database_errors("begin"):
            connection = await self._engine.connect()
            try:
                if connection.dialect.name == "postgresql":
                    # No transaction yet: the first write (see `driver`) or Core statement
                    # opens it, so a block that only reads never sends BEGIN or ROLLBACK.
                    raw = await connection.get_raw_connection()
                    self._adapter = raw.dbapi_connection
                    self._driver = raw.driver_connection
                else:
                    await connection.begin()
            except BaseException:
                self._driver = self._adapter = None
                await connection.close()
                raise
        self._connection = connection
        self._repository.forget_reads()
        return self

    async def driver(self, *, write: bool) -> Any:
        """The asyncpg connection for plain prepared statements (None off PostgreSQL).

        asyncpg keeps each statement prepared per connection, so these cost one round trip
        and no SQLAlchemy compile. SQLAlchemy's asyncpg adapter sends BEGIN only before the
        first statement; a write here opens that same transaction (so `commit`, `rollback`
        and Core statements of this block share it), while a read before any write runs
        without one: under READ COMMITTED a lone SELECT sees the same committed data inside
        or outside a transaction, and a read-only block then needs neither BEGIN nor
        ROLLBACK. (The factory's `write` and `get` do not come here: see `Checkout`.)"""
        connection = self.connection
        if self._driver is None:
            return None
        if write:
            if not connection.in_transaction():
                await connection.begin()
            # The adapter's own transaction slot (SQLAlchemy 2.1 asyncpg dialect): set here,
            # its commit and rollback end the transaction this BEGIN opened.
            if self._adapter._transaction is None:
                transaction = self._driver.transaction()
                await transaction.start()
                self._adapter._transaction = transaction
        return self._driver

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        driver, self._driver, self._adapter = self._driver, None, None
        if connection is None:
            return
        try:
            with database_errors("rollback"):
                try:
                    if driver is not None and driver.is_closed():
                        # Broken under a plain statement: the pool must not hand this
                        # connection out again (the server dropped its transaction with it).
                        await connection.invalidate()
                    elif connection.in_transaction():
                        await connection.rollback()
                finally:
                    await connection.close()
        except Exception:
            # A failed rollback on a broken connection must not hide the error that ended the
            # block; the server drops the transaction with the connection anyway.
            if exc is None:
                raise

    async def commit(self) -> None:
        with database_errors("commit"):
            await self.connection.commit()

    async def rollback(self) -> None:
        self._repository.forget_reads()
        with database_errors("rollback"):
            await self.connection.rollback()


class Checkout:
    """A pooled connection for statements that are whole transactions by themselves, handed
    out as the bare asyncpg connection: no SQLAlchemy `Connection` around it.

    SQLAlchemy runs a checkout in a new greenlet, as it may wait for a free connection, open a
    new one or replace a stale one; making that greenlet costs more than the rest of the
    checkout (about 25 us and a page fault here). With an idle connection in the pool, no
    pre-ping and no checkout listener, the checkout has nothing to wait for, so it is taken
    without one. Should that connection need opening again (it was invalidated while idle),
    the pool's attempt to wait for the server stops with `MissingGreenlet` before anything is
    sent, the pool takes its record back, and the checkout runs again in a greenlet as usual.
    The return needs no greenlet when no transaction is open and the connection is alive (the
    statements here never open one): SQLAlchemy's reset on return then has nothing to send. A
    connection that broke under its statement is invalidated, so the pool opens a new one in
    its place."""

    __slots__ = ("_fairy", "_pool")

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._fairy: Any = None

    async def __aenter__(self) -> Any:
        with database_errors("connect"):
            self._fairy = self._idle() or await greenlet_spawn(self._pool.connect)
        return self._fairy.driver_connection

    def _idle(self) -> Any:
        """An idle pooled connection checked out without a greenlet, or None."""
        pool = self._pool
        if (
            not isinstance(pool, QueuePool)
            or pool.checkedin() == 0
            or getattr(pool, "_pre_ping", True)
            or pool.dispatch.checkout
        ):
            return None
        try:
            return pool.connect()
        except MissingGreenlet:
            return None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        fairy, self._fairy = self._fairy, None
        driver = fairy.driver_connection
        if not driver.is_closed() and fairy.dbapi_connection._transaction is None:
            fairy.close()
            return
        try:
            with database_errors("return connection"):
                if driver.is_closed():
                    await greenlet_spawn(fairy.invalidate)
                await greenlet_spawn(fairy.close)
        except Exception:
            # As for a unit of work: a failed return must not hide the error of the statement.
            if exc is None:
                raise


async def one_statement(engine: AsyncEngine, operation: str, query: str, *args: Any) -> Any:
    """`query` alone on a pooled asyncpg connection (see `Checkout`), without BEGIN or COMMIT:
    one statement is its own transaction. Answers the first column of the first row, or None;
    a database error is DatabaseUnavailable or PortError naming `operation`."""
    async with Checkout(engine.sync_engine.pool) as driver:
        with database_errors(operation):
            return await driver.fetchval(query, *args)


class SqlUnitOfWorkFactory:
    """The UnitOfWorkFactory port: a new SqlUnitOfWork per call, all on one engine.

    On PostgreSQL, `write` and `get` are one statement each, sent on a pooled asyncpg
    connection without SQLAlchemy's `Connection` (see `Checkout`): about half the client CPU
    of the same statement through a unit of work."""

    def __init__(self, engine: AsyncEngine, *, ping_timeout: float = 2.0) -> None:
        self._engine = engine
        self._ping_timeout = ping_timeout
        self._plain = is_postgres(engine)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self._engine)

    async def write(self, write: BookingWrite) -> None:
        if not self._plain:
            async with self() as uow:
                await stage_write(uow, write)
                await uow.commit()
            return
        # No BEGIN: on PostgreSQL the write is one statement, its own transaction. The pool is
        # the engine's current one (`engine.dispose()` puts a new one in its place).
        async with Checkout(self._engine.sync_engine.pool) as driver:
            with database_errors("write booking"):
                await write_plain(driver, write)

    async def get(self, booking_id: int) -> Booking | None:
        if not self._plain:
            async with self() as uow:
                return await uow.bookings.get(booking_id)
        # A lone SELECT: no transaction (READ COMMITTED sees the same inside one or not).
        async with Checkout(self._engine.sync_engine.pool) as driver:
            with database_errors("get booking"):
                return await get_plain(driver, booking_id)

    async def ping(self) -> None:
        with database_errors("ping"):
            async with asyncio.timeout(self._ping_timeout), self._engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
