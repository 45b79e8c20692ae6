"""Apply the packaged Alembic migrations: `upgrade` and `downgrade` are async (asyncio)."""

from __future__ import annotations

from collections.abc import Callable

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Connection

from booking.adapters.sql.engine import create_engine, normalise_url
from booking.adapters.sql.errors import database_errors

SCRIPT_LOCATION = "booking.adapters.sql:migrations"

_Run = Callable[[Connection, "Config"], None]


def alembic_config(url: str | URL | None = None) -> Config:
    """The Alembic configuration, built in code: no alembic.ini is needed."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if url is not None:
        rendered = normalise_url(url).render_as_string(hide_password=False)
        # ConfigParser interpolation would read a '%' in a password as a placeholder.
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("no migrations are packaged")
    return head


async def upgrade(url: str | URL, revision: str = "head") -> None:
    """Migrate the database at `url` up to `revision`, in one transaction.

    Async: call it from a running event loop, or `asyncio.run(upgrade(url))` from sync code.
    Raises `DatabaseUnavailable` when the database cannot be reached."""

    def run(connection: Connection, config: Config) -> None:
        command.upgrade(config, revision)

    await _with_connection(url, run)


async def downgrade(url: str | URL, revision: str) -> None:
    """Migrate the database at `url` down to `revision` (`base` drops every table). Async."""

    def run(connection: Connection, config: Config) -> None:
        command.downgrade(config, revision)

    await _with_connection(url, run)


async def current_revision(url: str | URL) -> str | None:
    """The revision the database at `url` is at (None for an empty database). Async."""
    result: list[str | None] = []

    def run(connection: Connection, _config: Config) -> None:
        result.append(MigrationContext.configure(connection).get_current_revision())

    await _with_connection(url, run)
    return result[0]


async def _with_connection(url: str | URL, run: _Run) -> None:
    engine = create_engine(url, pool_size=1, max_overflow=0, command_timeout=300.0)
    config = alembic_config(url)
    try:
        with database_errors("migration"):
            async with engine.begin() as connection:

                def call(sync_connection: Connection) -> None:
                    config.attributes["connection"] = sync_connection
                    run(sync_connection, config)

                await connection.run_sync(call)
    finally:
        await engine.dispose()
