"""Library errors → port errors: unreachable or slow databases are `DatabaseUnavailable`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import exc as sa_exc

from booking.ports.errors import DatabaseUnavailable, PortError

# SQLSTATEs that say "try again": serialization failure, deadlock, lock not available, query
# cancelled (a timeout), and the server shutting down or starting up.
_TRANSIENT_SQLSTATES = frozenset(
    {
        "40001",
        "40P01",
        "55P03",
        "57014",
        "57P01",
        "57P02",
        "57P03",
        "53300",
        "08000",
        "08003",
        "08006",
        "08001",
        "08004",
        "25P03",
    }
)


# Errors of the asyncpg driver used directly by the hot statements (see `repository`).
DRIVER_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, asyncpg.InterfaceError)


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a PostgreSQL error, raw or wrapped by SQLAlchemy (None elsewhere)."""
    orig = error if isinstance(error, asyncpg.PostgresError) else getattr(error, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code if isinstance(code, str) else None


def is_unavailable(error: BaseException) -> bool:
    if isinstance(error, (TimeoutError, OSError, sa_exc.TimeoutError)):
        return True
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        if isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError)):
            return True
        return sqlstate(error) in _TRANSIENT_SQLSTATES
    if isinstance(error, asyncpg.InterfaceError):
        return True  # the connection is closed or in an unusable state
    if isinstance(error, asyncpg.PostgresError):
        return sqlstate(error) in _TRANSIENT_SQLSTATES
    return False


def translate(error: BaseException, what: str) -> PortError:
    """The port error for a library error raised while doing `what`.

    The message names the operation and the error type only: never SQL or parameters."""
    if isinstance(error, PortError):
        return error
    if is_unavailable(error):
        return DatabaseUnavailable(f"database unavailable during {what} ({type(error).__name__})")
    return PortError(f"database error during {what} ({type(error).__name__})")


@contextmanager
def database_errors(what: str) -> Iterator[None]:
    """Re-raise library and network errors as port errors (the original is the cause)."""
    try:
        yield
    except PortError:
        raise
    except (sa_exc.SQLAlchemyError, OSError, TimeoutError) as error:
        raise translate(error, what) from error
    except DRIVER_ERRORS as error:
        raise translate(error, what) from error
    except sa_exc.EmulatedDBAPIException as error:
        # A driver error as SQLAlchemy's adapter raises it outside a `Connection` (a checkout
        # straight from the pool): judged by the driver's own error.
        raise translate(error.orig or error, what) from error
