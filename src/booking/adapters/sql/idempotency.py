"""SQL IdempotencyStore: one answer per (scope, Idempotency-Key), shared by replicas."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from booking.adapters.sql._sql import upsert
from booking.adapters.sql.engine import is_postgres
from booking.adapters.sql.errors import database_errors
from booking.adapters.sql.repository import aware
from booking.adapters.sql.tables import idempotency_keys as keys
from booking.adapters.sql.uow import one_statement
from booking.ports.errors import PortError
from booking.ports.idempotency import (
    BeginOutcome,
    InFlight,
    KeyReused,
    Replay,
    Started,
    StoredResponse,
)

IN_FLIGHT = "in_flight"
DONE = "done"
_ATTEMPTS = 3  # a key forgotten between our insert and our read: look again, a bounded number

# PostgreSQL: the common case of each call as one plain statement, its own transaction (see
# SqlIdempotencyStore). Literal SQL only: every value is a bind parameter.
_PG_CLAIM_NEW = """
INSERT INTO idempotency_keys (scope, key, fingerprint, state, locked_until)
VALUES ($1, $2, $3, 'in_flight', $4)
ON CONFLICT (scope, key) DO NOTHING
RETURNING key
"""
_PG_COMPLETE = """
UPDATE idempotency_keys SET state = 'done', status_code = $3, body = $4, resource_id = $5,
    locked_until = NULL, expires_at = $6
WHERE scope = $1 AND key = $2
"""
_PG_FORGET = "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2"


class SqlIdempotencyStore:
    """The IdempotencyStore port (see its contract).

    `begin` inserts the key with ON CONFLICT DO NOTHING, so of two concurrent first requests
    exactly one gets `Started`; the other reads the row under a lock and answers from it.
    A repeat with another fingerprint is `KeyReused` (422) even while the first is in flight:
    a different payload is the client's error either way.

    On PostgreSQL a key not seen before is claimed by that INSERT alone, sent as one statement
    without BEGIN or COMMIT on a pooled asyncpg connection (as the booking writes are), and
    `complete` and `forget` are one statement each: one round trip apiece instead of three
    (BEGIN, the statement, COMMIT), and no greenlet per await. A key already there goes
    through the transaction above."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._plain = is_postgres(engine)

    async def begin(
        self,
        scope: str,
        key: str,
        fingerprint: str,
        now: datetime,
        in_flight_for: timedelta,
    ) -> BeginOutcome:
        if self._plain:
            claimed = await one_statement(
                self._engine,
                "idempotency begin",
                _PG_CLAIM_NEW,
                scope,
                key,
                fingerprint,
                aware(now + in_flight_for),
            )
            if claimed is not None:
                return Started()
        with database_errors("idempotency begin"):
            async with self._engine.begin() as conn:
                for _ in range(_ATTEMPTS):
                    outcome = await self._begin(conn, scope, key, fingerprint, now, in_flight_for)
                    if outcome is not None:
                        return outcome
        raise PortError("idempotency key kept changing under this request")

    async def _begin(
        self,
        conn: AsyncConnection,
        scope: str,
        key: str,
        fingerprint: str,
        now: datetime,
        in_flight_for: timedelta,
    ) -> BeginOutcome | None:
        claim = {
            "fingerprint": fingerprint,
            "state": IN_FLIGHT,
            "status_code": None,
            "body": None,
            "resource_id": None,
            "locked_until": now + in_flight_for,
            "expires_at": None,
        }
        inserted = await conn.execute(
            upsert(conn.dialect, keys)
            .values(scope=scope, key=key, **claim)
            .on_conflict_do_nothing(index_elements=[keys.c.scope, keys.c.key])
            .returning(keys.c.key)
        )
        if inserted.first() is not None:
            return Started()
        this_key = (keys.c.scope == scope, keys.c.key == key)
        row = (await conn.execute(select(keys).where(*this_key).with_for_update())).one_or_none()
        if row is None:
            return None  # forgotten in between: try the insert again
        if row.state == DONE:
            abandoned = row.expires_at is not None and row.expires_at <= now
        else:
            abandoned = row.locked_until is None or row.locked_until <= now
        if abandoned:
            await conn.execute(update(keys).where(*this_key).values(**claim))
            return Started()
        if row.fingerprint != fingerprint:
            return KeyReused()
        if row.state == DONE:
            return Replay(
                StoredResponse(
                    status_code=row.status_code,
                    body=bytes(row.body or b""),
                    resource_id=row.resource_id,
                )
            )
        return InFlight()

    async def complete(
        self, scope: str, key: str, response: StoredResponse, now: datetime, keep_for: timedelta
    ) -> None:
        if self._plain:
            await one_statement(
                self._engine,
                "idempotency complete",
                _PG_COMPLETE,
                scope,
                key,
                response.status_code,
                response.body,
                response.resource_id,
                aware(now + keep_for),
            )
            return
        with database_errors("idempotency complete"):
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(keys)
                    .where(keys.c.scope == scope, keys.c.key == key)
                    .values(
                        state=DONE,
                        status_code=response.status_code,
                        body=response.body,
                        resource_id=response.resource_id,
                        locked_until=None,
                        expires_at=now + keep_for,
                    )
                )

    async def forget(self, scope: str, key: str) -> None:
        if self._plain:
            await one_statement(self._engine, "idempotency forget", _PG_FORGET, scope, key)
            return
        with database_errors("idempotency forget"):
            async with self._engine.begin() as conn:
                await conn.execute(delete(keys).where(keys.c.scope == scope, keys.c.key == key))

    async def purge_expired(self, now: datetime) -> int:
        """Delete the answers kept past their time; returns how many went. Not in the port:
        a maintenance job may call it (the lookups already ignore expired answers)."""
        with database_errors("idempotency purge"):
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    delete(keys).where(keys.c.state == DONE, keys.c.expires_at <= now)
                )
        return result.rowcount
