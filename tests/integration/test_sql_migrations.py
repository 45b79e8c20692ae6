"""The packaged Alembic migrations: up, down to nothing and up again, matching tables.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from booking.adapters.sql import create_engine
from booking.adapters.sql.migrate import current_revision, downgrade, head_revision, upgrade
from booking.adapters.sql.tables import metadata

TABLES = {"bookings", "booking_seats", "outbox", "idempotency_keys", "audit_log"}


async def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    return names - {"alembic_version", "sqlite_sequence"}


async def schema_drift(url: str) -> list[Any]:
    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(compare)
    finally:
        await engine.dispose()


async def round_trip(url: str) -> None:
    assert await current_revision(url) is None
    await upgrade(url)
    assert await current_revision(url) == head_revision()
    assert await table_names(url) == TABLES
    await downgrade(url, "base")
    assert await current_revision(url) is None
    assert await table_names(url) == set()
    await upgrade(url)
    assert await table_names(url) == TABLES
    assert await schema_drift(url) == []


async def test_postgres_upgrade_downgrade_upgrade(empty_postgres_url: str) -> None:
    """On an empty PostgreSQL database: upgrade, downgrade to base, upgrade; matches tables.py."""
    await round_trip(empty_postgres_url)


async def test_sqlite_upgrade_downgrade_upgrade(tmp_path: Path) -> None:
    """On a new SQLite file: upgrade, downgrade to base, upgrade; matches tables.py."""
    await round_trip(f"sqlite:///{tmp_path / 'booking.db'}")


async def test_upgrade_twice_is_a_no_op(tmp_path: Path) -> None:
    """Running the migrations on a database already at head changes nothing."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'twice.db'}"
    await upgrade(url)
    await upgrade(url)
    assert await current_revision(url) == head_revision()
