"""SQL adapters (SQLAlchemy Core, async; the hot statements as plain asyncpg on PostgreSQL)."""

from booking.adapters.sql.engine import create_engine
from booking.adapters.sql.idempotency import SqlIdempotencyStore
from booking.adapters.sql.outbox import SqlOutboxStore
from booking.adapters.sql.repository import SqlAuditLog, SqlBookingRepository, SqlOutbox
from booking.adapters.sql.uow import SqlUnitOfWork, SqlUnitOfWorkFactory

__all__ = [
    "SqlAuditLog",
    "SqlBookingRepository",
    "SqlIdempotencyStore",
    "SqlOutbox",
    "SqlOutboxStore",
    "SqlUnitOfWork",
    "SqlUnitOfWorkFactory",
    "create_engine",
]
