"""Bookings, their seat claims, the outbox, idempotency keys and the audit log."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

STATUSES = "'PENDING', 'CONFIRMED', 'FAILED', 'CANCELLED'"


def _int64() -> sa.types.TypeEngine[int]:
    # SQLite: INTEGER PRIMARY KEY is the 64-bit rowid; BIGINT would not autoincrement there.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "bookings",
        sa.Column("id", _int64(), nullable=False, autoincrement=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("show_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failure_reason", sa.String(32)),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("hold_expires_at", _ts(), nullable=False),
        sa.Column("payment_session_id", sa.String(255)),
        sa.Column("payment_url", sa.Text()),
        sa.Column("payment_expires_at", _ts()),
        sa.Column("refund_required", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.Column("reconcile_after", _ts()),
        sa.PrimaryKeyConstraint("id", name="pk_bookings"),
        sa.UniqueConstraint("payment_session_id", name="uq_bookings_payment_session_id"),
        sa.CheckConstraint(f"status IN ({STATUSES})", name="ck_bookings_status_known"),
        sa.CheckConstraint("total_minor >= 0", name="ck_bookings_total_not_negative"),
        sa.CheckConstraint("version >= 1", name="ck_bookings_version_positive"),
    )
    op.create_index("ix_bookings_user_created", "bookings", ["user_id", "created_at", "id"])
    op.create_index(
        "ix_bookings_pending_hold",
        "bookings",
        ["hold_expires_at"],
        postgresql_where=sa.text("status = 'PENDING'"),
        sqlite_where=sa.text("status = 'PENDING'"),
    )
    op.create_index(
        "ix_bookings_refund_required",
        "bookings",
        ["updated_at"],
        postgresql_where=sa.text("refund_required"),
        sqlite_where=sa.text("refund_required"),
    )

    op.create_table(
        "booking_seats",
        sa.Column("booking_id", _int64(), nullable=False, autoincrement=False),
        sa.Column("seat_id", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("show_id", sa.BigInteger(), nullable=False),
        sa.Column("seat_number", sa.String(32), nullable=False),
        sa.Column("seat_type", sa.String(16), nullable=False),
        sa.Column("price_minor", sa.BigInteger(), nullable=False),
        sa.Column("claimed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("booking_id", "seat_id", name="pk_booking_seats"),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name="fk_booking_seats_booking_id_bookings",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("price_minor >= 0", name="ck_booking_seats_price_not_negative"),
    )
    # The live-claim rule (invariant 1): at most one claimed row per show-seat.
    op.create_index(
        "uq_booking_seats_live_claim",
        "booking_seats",
        ["show_id", "seat_id"],
        unique=True,
        postgresql_where=sa.text("claimed"),
        sqlite_where=sa.text("claimed"),
    )

    op.create_table(
        "outbox",
        sa.Column("seq", _int64(), sa.Identity(always=False), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("booking_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("available_at", _ts(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("last_error", sa.Text()),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_until", _ts()),
        sa.Column("sent_at", _ts()),
        sa.PrimaryKeyConstraint("seq", name="pk_outbox"),
        sa.UniqueConstraint("message_id", name="uq_outbox_message_id"),
        sa.CheckConstraint("kind IN ('event', 'action')", name="ck_outbox_kind_known"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_outbox_unsent",
        "outbox",
        ["seq"],
        postgresql_where=sa.text("sent_at IS NULL"),
        sqlite_where=sa.text("sent_at IS NULL"),
    )
    op.create_index(
        "ix_outbox_unsent_booking",
        "outbox",
        ["booking_id", "seq"],
        postgresql_where=sa.text("sent_at IS NULL"),
        sqlite_where=sa.text("sent_at IS NULL"),
    )

    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(255), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("body", sa.LargeBinary()),
        sa.Column("resource_id", sa.BigInteger()),
        sa.Column("locked_until", _ts()),
        sa.Column("expires_at", _ts()),
        sa.PrimaryKeyConstraint("scope", "key", name="pk_idempotency_keys"),
        sa.CheckConstraint(
            "state IN ('in_flight', 'done')", name="ck_idempotency_keys_state_known"
        ),
    )
    op.create_index("ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"])

    op.create_table(
        "audit_log",
        sa.Column("id", _int64(), sa.Identity(always=False), nullable=False),
        sa.Column("booking_id", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("from_status", sa.String(16)),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("refund_required", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
        sa.CheckConstraint(
            f"from_status IS NULL OR from_status IN ({STATUSES})",
            name="ck_audit_log_from_status_known",
        ),
        sa.CheckConstraint(f"to_status IN ({STATUSES})", name="ck_audit_log_to_status_known"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_log_booking", "audit_log", ["booking_id", "id"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("idempotency_keys")
    op.drop_table("outbox")
    op.drop_table("booking_seats")
    op.drop_table("bookings")
