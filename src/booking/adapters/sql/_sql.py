"""Small helpers shared by the SQL adapters: dialect-specific INSERT and row mapping."""

from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect


def upsert(dialect: Dialect, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can say ON CONFLICT (both PostgreSQL and SQLite speak it)."""
    if dialect.name == "postgresql":
        return postgresql.insert(table)
    if dialect.name == "sqlite":
        return sqlite.insert(table)
    raise ValueError(f"unsupported database {dialect.name!r}")


def is_live_claim_violation(error: BaseException) -> bool:
    """Whether an IntegrityError comes from the live-claim index (PostgreSQL or SQLite text)."""
    text = str(getattr(error, "orig", error))
    return "uq_booking_seats_live_claim" in text or "booking_seats.show_id" in text
