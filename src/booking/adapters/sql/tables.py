"""The booking schema as SQLAlchemy Core tables on one MetaData (the migrations mirror it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    false,
    text,
)
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so migrations can name what they drop.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """`timestamptz` on PostgreSQL; UTC text on SQLite. Always returns aware UTC datetimes.

    A naive datetime is refused on the way in: it is a bug, and guessing its zone would hide it.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        # SQLite compares the stored text: one zone and one format keep the order right.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite makes an INTEGER PRIMARY KEY the rowid (64-bit); BIGINT would not autoincrement there.
Int64 = BigInteger().with_variant(Integer(), "sqlite")

# Plain JSON (not JSONB) on PostgreSQL: an outbox row is written once and read back whole, and
# json keeps the text (key order included) exactly as written, without JSONB's parse cost.
Json = JSON(none_as_null=True)

LIVE_STATUSES = ("PENDING", "CONFIRMED")


def _status_check(column: str, *, nullable: bool = False) -> Any:
    allowed = "'PENDING', 'CONFIRMED', 'FAILED', 'CANCELLED'"
    condition = f"{column} IN ({allowed})"
    if nullable:
        condition = f"{column} IS NULL OR {condition}"
    return CheckConstraint(condition, name=f"{column}_known")


bookings = Table(
    "bookings",
    metadata,
    Column("id", Int64, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, nullable=False),
    Column("show_id", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("failure_reason", String(32)),
    Column("total_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("hold_expires_at", UtcDateTime, nullable=False),
    Column("payment_session_id", String(255), unique=True),
    Column("payment_url", Text),
    Column("payment_expires_at", UtcDateTime),
    Column("refund_required", Boolean, nullable=False, server_default=false()),
    Column("version", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # The reconciler's lease: the booking is not due again before this moment.
    Column("reconcile_after", UtcDateTime),
    _status_check("status"),
    CheckConstraint("total_minor >= 0", name="total_not_negative"),
    CheckConstraint("version >= 1", name="version_positive"),
    # list_for_user: newest first, keyset by (created_at, id).
    Index("ix_bookings_user_created", "user_id", "created_at", "id"),
    # claim_due: PENDING bookings by hold expiry.
    Index(
        "ix_bookings_pending_hold",
        "hold_expires_at",
        postgresql_where=text("status = 'PENDING'"),
        sqlite_where=text("status = 'PENDING'"),
    ),
    Index(
        "ix_bookings_refund_required",
        "updated_at",
        postgresql_where=text("refund_required"),
        sqlite_where=text("refund_required"),
    ),
)

booking_seats = Table(
    "booking_seats",
    metadata,
    Column(
        "booking_id",
        Int64,
        ForeignKey("bookings.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("seat_id", BigInteger, primary_key=True, autoincrement=False),
    Column("position", SmallInteger, nullable=False),  # the seat's place in the booking
    Column("show_id", BigInteger, nullable=False),
    Column("seat_number", String(32), nullable=False),
    Column("seat_type", String(16), nullable=False),
    Column("price_minor", BigInteger, nullable=False),
    Column("claimed", Boolean, nullable=False),
    CheckConstraint("price_minor >= 0", name="price_not_negative"),
    # The live-claim rule, enforced by the database itself (invariant 1): a show-seat has at
    # most one claimed row. A booking's rows stay claimed while it is live and until its
    # compensation released them.
    Index(
        "uq_booking_seats_live_claim",
        "show_id",
        "seat_id",
        unique=True,
        postgresql_where=text("claimed"),
        sqlite_where=text("claimed"),
    ),
)

outbox = Table(
    "outbox",
    metadata,
    Column("seq", Int64, Identity(always=False), primary_key=True),
    Column("message_id", String(64), nullable=False, unique=True),
    Column("booking_id", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("name", String(128), nullable=False),
    Column("payload", Json, nullable=False),
    Column("headers", Json, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("available_at", UtcDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    Column("lease_owner", String(128)),
    Column("lease_until", UtcDateTime),
    Column("sent_at", UtcDateTime),
    CheckConstraint("kind IN ('event', 'action')", name="kind_known"),
    # claim: unsent rows in seq order; the per-booking check looks up unsent rows by booking.
    Index(
        "ix_outbox_unsent",
        "seq",
        postgresql_where=text("sent_at IS NULL"),
        sqlite_where=text("sent_at IS NULL"),
    ),
    Index(
        "ix_outbox_unsent_booking",
        "booking_id",
        "seq",
        postgresql_where=text("sent_at IS NULL"),
        sqlite_where=text("sent_at IS NULL"),
    ),
    sqlite_autoincrement=True,
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", String(255), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(255), nullable=False),
    Column("state", String(16), nullable=False),
    Column("status_code", Integer),
    Column("body", LargeBinary),
    Column("resource_id", BigInteger),
    Column("locked_until", UtcDateTime),
    Column("expires_at", UtcDateTime),
    CheckConstraint("state IN ('in_flight', 'done')", name="state_known"),
    Index("ix_idempotency_keys_expires_at", "expires_at"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Int64, Identity(always=False), primary_key=True),
    Column("booking_id", BigInteger, nullable=False),
    Column("actor", String(255), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("from_status", String(16)),
    Column("to_status", String(16), nullable=False),
    Column("reason", Text),
    Column("refund_required", Boolean, nullable=False, server_default=false()),
    _status_check("from_status", nullable=True),
    _status_check("to_status"),
    Index("ix_audit_log_booking", "booking_id", "id"),
    sqlite_autoincrement=True,
)
