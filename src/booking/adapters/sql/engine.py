"""One async SQLAlchemy engine for PostgreSQL (asyncpg) and SQLite (aiosqlite)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

POSTGRES = "postgresql"
SQLITE = "sqlite"

_POSTGRES_NAMES = {"postgres", "postgresql", "postgresql+asyncpg", "postgres+asyncpg"}
_SQLITE_NAMES = {"sqlite", "sqlite+aiosqlite"}


def normalise_url(url: str | URL) -> URL:
    """The async driver's URL: `postgresql://` → asyncpg, `sqlite:///` → aiosqlite.

    Raises ValueError for any other database (it names the scheme, never the password)."""
    parsed = make_url(url) if isinstance(url, str) else url
    name = parsed.drivername
    if name in _POSTGRES_NAMES or name.startswith(("postgresql+", "postgres+")):
        return parsed.set(drivername="postgresql+asyncpg")
    if name in _SQLITE_NAMES or name.startswith("sqlite+"):
        return parsed.set(drivername="sqlite+aiosqlite")
    raise ValueError(f"unsupported database URL scheme {name!r}: use postgresql:// or sqlite:///")


class _DeferredConnect:
    """`asyncpg.connect(*args, **kwargs)`, started when awaited rather than when made.

    SQLAlchemy makes the connect call before it knows whether it may wait for it: a checkout
    taken without a greenlet (see `uow.Checkout`) whose connection turns out to need opening
    again stops at that point (`MissingGreenlet`, nothing sent) and drops the call. A coroutine
    dropped unawaited warns ("never awaited"); this does not."""

    __slots__ = ("_args", "_kwargs")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args = args
        self._kwargs = kwargs

    def __await__(self) -> Generator[Any, None, Any]:
        connecting: Generator[Any, None, Any] = asyncpg.connect(
            *self._args, **self._kwargs
        ).__await__()
        return connecting


def create_engine(
    url: str | URL,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    pool_timeout: float = 5.0,
    connect_timeout: float = 5.0,
    command_timeout: float = 10.0,
    idle_in_transaction_timeout: float = 60.0,
    sqlite_busy_timeout: float = 5.0,
    pool_pre_ping: bool = False,
    echo: bool = False,
) -> AsyncEngine:
    """An engine with bounded waits everywhere.

    - `pool_timeout`: seconds to wait for a pooled connection before giving up.
    - PostgreSQL: `connect_timeout` for a new connection, `command_timeout` for every statement
      (asyncpg cancels it), and the server ends a transaction left idle for
      `idle_in_transaction_timeout` seconds (a stuck unit of work must not hold seat claims).
    - SQLite: WAL journal, foreign keys on, `sqlite_busy_timeout` for the file lock, and every
      transaction starts with `BEGIN IMMEDIATE`: SQLite has one writer, and taking the write
      lock up front makes concurrent units of work queue on the busy timeout instead of failing
      with SQLITE_BUSY when a reader later tries to write. It also makes SAVEPOINT and
      transactional DDL behave (the sqlite3 driver's legacy transaction control does not).
    """
    target = normalise_url(url)
    if target.get_backend_name() == POSTGRES:
        return create_async_engine(
            target,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout,
            pool_pre_ping=pool_pre_ping,
            echo=echo,
            connect_args={
                # SQLAlchemy's asyncpg dialect calls this in place of `asyncpg.connect`.
                "async_creator_fn": _DeferredConnect,
                "timeout": connect_timeout,
                "command_timeout": command_timeout,
                "server_settings": {
                    "application_name": "booking",
                    "idle_in_transaction_session_timeout": str(
                        int(idle_in_transaction_timeout * 1000)
                    ),
                },
            },
        )
    return _sqlite_engine(
        target,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        busy_timeout=sqlite_busy_timeout,
        echo=echo,
    )


def _sqlite_engine(
    target: URL,
    *,
    pool_size: int,
    max_overflow: int,
    pool_timeout: float,
    busy_timeout: float,
    echo: bool,
) -> AsyncEngine:
    in_memory = target.database in (None, "", ":memory:")
    options: dict[str, Any] = {"echo": echo, "connect_args": {"timeout": busy_timeout}}
    if not in_memory:
        options.update(pool_size=pool_size, max_overflow=max_overflow, pool_timeout=pool_timeout)
    engine = create_async_engine(target, **options)
    busy_ms = int(busy_timeout * 1000)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (see `begin` below) instead of the driver.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == POSTGRES
