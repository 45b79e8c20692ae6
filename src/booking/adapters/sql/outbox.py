"""SQL OutboxStore: the relaying side of the transactional outbox, shared by replicas."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.adapters.sql.engine import is_postgres
from booking.adapters.sql.errors import database_errors
from booking.adapters.sql.repository import aware
from booking.adapters.sql.tables import outbox
from booking.adapters.sql.uow import one_statement
from booking.ports.outbox import MessageKind, OutboxMessage, OutboxStats

MAX_ERROR_LENGTH = 2000

# PostgreSQL: the relay's per-row marks as one plain statement each (see SqlOutboxStore).
# Literal SQL only: every value is a bind parameter.
_PG_MARK_SENT = """
UPDATE outbox SET sent_at = $3, lease_until = NULL
WHERE message_id = $1 AND lease_owner = $2 AND sent_at IS NULL
"""
_PG_MARK_RETRY = """
UPDATE outbox SET attempts = attempts + 1, last_error = $3, available_at = $4,
    lease_owner = NULL, lease_until = NULL
WHERE message_id = $1 AND lease_owner = $2 AND sent_at IS NULL
"""


class SqlOutboxStore:
    """The OutboxStore port (see its contract); each call is one short transaction.

    `claim` takes candidate rows with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so replicas never
    get the same row, then keeps a row only when every earlier unsent row of its stream (its
    booking and kind) is kept too: a row whose predecessor is leased, backing off, or being
    claimed by another replica waits, and a stream's rows go out in order. Events and actions
    of one booking are separate streams, so a broker outage does not hold back a seat release.
    SQLite has one writer (every transaction is BEGIN IMMEDIATE): its claimers take turns.

    Rows of one booking are ordered by `seq`, the insertion order; that equals commit order
    because the state changes that write them are serialised by the booking's row version.

    On PostgreSQL the marks the relay makes for every row it dispatched (`mark_sent`,
    `mark_retry`) are one statement each, sent without BEGIN or COMMIT on a pooled asyncpg
    connection as the booking writes are: one round trip instead of three, and no greenlet
    per await."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._plain = is_postgres(engine)

    async def claim(
        self, owner: str, now: datetime, lease: timedelta, limit: int
    ) -> list[OutboxMessage]:
        if limit <= 0:
            return []
        unsent = outbox.c.sent_at.is_(None)
        candidates = (
            select(outbox.c.seq, outbox.c.booking_id, outbox.c.kind)
            .where(
                unsent,
                outbox.c.available_at <= now,
                or_(outbox.c.lease_until.is_(None), outbox.c.lease_until <= now),
            )
            .order_by(outbox.c.seq)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with database_errors("outbox claim"):
            async with self._engine.begin() as conn:
                rows = (await conn.execute(candidates)).all()
                if not rows:
                    return []
                taken = {row.seq for row in rows}
                streams = {(row.booking_id, row.kind) for row in rows}
                # Every unsent row of these bookings up to the last candidate, whoever holds
                # it: a gap (a row not among ours) blocks the rest of that stream.
                earlier = (
                    select(outbox.c.seq, outbox.c.booking_id, outbox.c.kind)
                    .where(
                        unsent,
                        outbox.c.booking_id.in_({row.booking_id for row in rows}),
                        outbox.c.seq <= rows[-1].seq,
                    )
                    .order_by(outbox.c.seq)
                )
                keep: list[int] = []
                blocked: set[tuple[int, str]] = set()
                for row in (await conn.execute(earlier)).all():
                    stream = (row.booking_id, row.kind)
                    if stream not in streams or stream in blocked:
                        continue
                    if row.seq in taken:
                        keep.append(row.seq)
                    else:
                        blocked.add(stream)
                if not keep:
                    return []
                leased = (
                    await conn.execute(
                        update(outbox)
                        .where(outbox.c.seq.in_(keep))
                        .values(lease_owner=owner, lease_until=now + lease)
                        .returning(*outbox.c)
                    )
                ).all()
        return [_message(row) for row in sorted(leased, key=lambda row: row.seq)]

    async def mark_sent(self, message_id: str, owner: str, now: datetime) -> None:
        if self._plain:
            await one_statement(
                self._engine, "outbox mark sent", _PG_MARK_SENT, message_id, owner, aware(now)
            )
            return
        with database_errors("outbox mark sent"):
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(outbox)
                    .where(
                        outbox.c.message_id == message_id,
                        outbox.c.lease_owner == owner,
                        outbox.c.sent_at.is_(None),
                    )
                    .values(sent_at=now, lease_until=None)
                )

    async def mark_retry(
        self, message_id: str, owner: str, error: str, available_at: datetime
    ) -> None:
        if self._plain:
            await one_statement(
                self._engine,
                "outbox mark retry",
                _PG_MARK_RETRY,
                message_id,
                owner,
                error[:MAX_ERROR_LENGTH],
                aware(available_at),
            )
            return
        with database_errors("outbox mark retry"):
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(outbox)
                    .where(
                        outbox.c.message_id == message_id,
                        outbox.c.lease_owner == owner,
                        outbox.c.sent_at.is_(None),
                    )
                    .values(
                        attempts=outbox.c.attempts + 1,
                        last_error=error[:MAX_ERROR_LENGTH],
                        available_at=available_at,
                        lease_owner=None,
                        lease_until=None,
                    )
                )

    async def requeue(self, message_id: str, now: datetime) -> bool:
        with database_errors("outbox requeue"):
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    update(outbox)
                    .where(outbox.c.message_id == message_id)
                    .values(sent_at=None, available_at=now, lease_owner=None, lease_until=None)
                )
        return result.rowcount > 0

    async def stats(self) -> OutboxStats:
        query = select(
            func.count(),
            func.count(case((outbox.c.attempts > 0, 1))),
            func.min(outbox.c.created_at),
        ).where(outbox.c.sent_at.is_(None))
        with database_errors("outbox stats"):
            async with self._engine.connect() as conn:
                pending, failing, oldest = (await conn.execute(query)).one()
        return OutboxStats(pending=pending, failing=failing, oldest_pending_at=oldest)

    async def recent(self, limit: int, *, pending_only: bool = False) -> list[OutboxMessage]:
        if limit <= 0:
            return []
        query = select(outbox).order_by(outbox.c.seq.desc()).limit(limit)
        if pending_only:
            query = query.where(outbox.c.sent_at.is_(None))
        with database_errors("outbox recent"):
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        return [_message(row) for row in rows]


def _message(row: Row[Any]) -> OutboxMessage:
    return OutboxMessage(
        message_id=row.message_id,
        booking_id=row.booking_id,
        kind=MessageKind(row.kind),
        name=row.name,
        payload=row.payload,
        headers=row.headers,
        created_at=row.created_at,
        attempts=row.attempts,
        sent_at=row.sent_at,
        last_error=row.last_error,
    )
