"""SQL BookingRepository, Outbox (writing side) and AuditLog on one unit-of-work connection."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import and_, delete, exists, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from booking.adapters.sql._sql import is_live_claim_violation, upsert
from booking.adapters.sql.errors import database_errors, translate
from booking.adapters.sql.tables import LIVE_STATUSES, audit_log, booking_seats, bookings, outbox
from booking.domain.booking import (
    Booking,
    BookingStatus,
    FailureReason,
    PaymentSession,
    Seat,
    SeatType,
)
from booking.domain.money import Money
from booking.ports.errors import (
    DuplicateBookingId,
    PortError,
    SeatsAlreadyClaimed,
    StaleBooking,
)
from booking.ports.outbox import OutboxMessage
from booking.ports.repository import AuditEntry, BookingWrite, PageCursor

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from booking.adapters.sql.uow import SqlUnitOfWork


class SqlBookingRepository:
    """The BookingRepository port on the unit of work's connection (see its contract).

    The live-claim rule is the partial unique index `uq_booking_seats_live_claim`; `add` inserts
    the seat rows with ON CONFLICT DO NOTHING and compares what went in, so a conflict never
    aborts the transaction: the booking's rows are removed again and `SeatsAlreadyClaimed` names
    the seats, leaving the unit of work usable."""

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow
        # (version, status) of each booking as this unit of work last read or wrote it: a save
        # from a known live state needs no re-claim statement.
        self._seen: dict[int, tuple[int, BookingStatus]] = {}

    @property
    def _conn(self) -> AsyncConnection:
        return self._uow.connection

    def forget_reads(self) -> None:
        """Drop what this repository remembers of earlier reads (a new transaction)."""
        self._seen.clear()

    async def add(self, booking: Booking) -> None:
        with database_errors("add booking"):
            driver = await self._uow.driver(write=True)
            if driver is not None:
                await self._add_plain(driver, booking)
                return
            conn = self._conn
            inserted = await conn.execute(
                upsert(conn.dialect, bookings)
                .values(**_booking_row(booking))
                .on_conflict_do_nothing(index_elements=[bookings.c.id])
                .returning(bookings.c.id)
            )
            if inserted.first() is None:
                raise DuplicateBookingId(f"booking id {booking.booking_id} is taken")
            claimed = booking.status.is_live
            rows = [
                _seat_row(booking, position, seat, claimed=claimed)
                for position, seat in enumerate(booking.seats)
            ]
            # One lock order for every transaction (show, seat): two bookings racing for
            # overlapping seats then wait for each other instead of deadlocking.
            rows.sort(key=lambda row: row["seat_id"])
            # The rows go as executemany parameters, not as a multi-row VALUES literal: the
            # statement then compiles once and stays in SQLAlchemy's cache for every booking.
            if not claimed:
                await conn.execute(insert(booking_seats), rows)
                self._seen[booking.booking_id] = (booking.version, booking.status)
                return
            result = await conn.execute(
                upsert(conn.dialect, booking_seats)
                .on_conflict_do_nothing(
                    index_elements=[booking_seats.c.show_id, booking_seats.c.seat_id],
                    index_where=booking_seats.c.claimed,
                )
                .returning(booking_seats.c.seat_id),
                rows,
            )
            taken = set(booking.seat_ids) - set(result.scalars().all())
            if taken:
                # Undo this booking only; the rest of the unit of work stays as it was.
                await conn.execute(
                    delete(booking_seats).where(booking_seats.c.booking_id == booking.booking_id)
                )
                await conn.execute(delete(bookings).where(bookings.c.id == booking.booking_id))
                raise SeatsAlreadyClaimed(sorted(taken))
            self._seen[booking.booking_id] = (booking.version, booking.status)

    async def get(self, booking_id: int) -> Booking | None:
        with database_errors("get booking"):
            driver = await self._uow.driver(write=False)
            if driver is not None:
                return self._seen_now(await get_plain(driver, booking_id))
            found = await self._load_joined(bookings.c.id == booking_id)
        return found

    async def by_session(self, session_id: str) -> Booking | None:
        with database_errors("get booking by session"):
            driver = await self._uow.driver(write=False)
            if driver is not None:
                return self._seen_now(
                    booking_of_rows(await driver.fetch(_PG_BY_SESSION, session_id))
                )
            found = await self._load_joined(bookings.c.payment_session_id == session_id)
        return found

    async def _add_plain(self, driver: Any, booking: Booking) -> None:
        # PostgreSQL: the booking and its seats in one statement (data-modifying CTEs). The
        # seats go in only if the booking row did; a seat whose live claim exists is skipped
        # by ON CONFLICT, so nothing aborts the transaction and the answer names what went in.
        row = await driver.fetchrow(_PG_ADD, *_new_booking_args(booking))
        if not row["added"]:
            raise DuplicateBookingId(f"booking id {booking.booking_id} is taken")
        taken = set(booking.seat_ids) - set(row["seats"])
        if taken:
            # Undo this booking only (its seats go with it: ON DELETE CASCADE); the rest of
            # the unit of work stays as it was.
            await driver.execute(_PG_DELETE, booking.booking_id)
            raise SeatsAlreadyClaimed(sorted(taken))
        self._seen[booking.booking_id] = (booking.version, booking.status)

    def _seen_now(self, booking: Booking | None) -> Booking | None:
        if booking is not None:
            self._seen[booking.booking_id] = (booking.version, booking.status)
        return booking

    async def save(self, booking: Booking, expected_version: int) -> None:
        seen = self._seen.get(booking.booking_id)
        was_live = seen is not None and seen[0] == expected_version and seen[1].is_live
        # Not live, or live as this unit of work read it: no claim to take back.
        plain = not booking.status.is_live or was_live
        with database_errors("save booking"):
            if plain:
                driver = await self._uow.driver(write=True)
                if driver is not None:
                    status = await driver.execute(
                        _PG_SAVE, booking.booking_id, expected_version, *_mutable_args(booking)
                    )
                    if status == "UPDATE 0":
                        raise StaleBooking(booking.booking_id)
                    self._seen[booking.booking_id] = (booking.version, booking.status)
                    return
            conn = self._conn
            statement = (
                update(bookings)
                .where(bookings.c.id == booking.booking_id, bookings.c.version == expected_version)
                .values(**_mutable_row(booking))
            )
            if plain:
                result = await conn.execute(statement)
                if result.rowcount == 0:
                    raise StaleBooking(booking.booking_id)
            else:
                # Live again (a late payment), or a state this unit of work did not read: take
                # the claims back inside a savepoint, so a conflict changes nothing at all.
                try:
                    async with conn.begin_nested():
                        result = await conn.execute(statement)
                        if result.rowcount == 0:
                            raise StaleBooking(booking.booking_id)
                        await conn.execute(
                            update(booking_seats)
                            .where(
                                booking_seats.c.booking_id == booking.booking_id,
                                ~booking_seats.c.claimed,
                            )
                            .values(claimed=True)
                        )
                except IntegrityError as error:
                    if not is_live_claim_violation(error):
                        raise translate(error, "save booking") from error
                    taken = await self._claimed_elsewhere(booking)
                    raise SeatsAlreadyClaimed(taken or booking.seat_ids) from error
        self._seen[booking.booking_id] = (booking.version, booking.status)

    async def list_for_user(
        self,
        user_id: int,
        *,
        status: BookingStatus | None,
        limit: int,
        after: PageCursor | None,
    ) -> list[Booking]:
        if limit <= 0:
            return []
        query = select(bookings).where(bookings.c.user_id == user_id)
        if status is not None:
            query = query.where(bookings.c.status == status.value)
        if after is not None:
            query = query.where(
                or_(
                    bookings.c.created_at < after.created_at,
                    and_(
                        bookings.c.created_at == after.created_at,
                        bookings.c.id < after.booking_id,
                    ),
                )
            )
        query = query.order_by(bookings.c.created_at.desc(), bookings.c.id.desc()).limit(limit)
        with database_errors("list bookings"):
            rows = (await self._conn.execute(query)).all()
            found = await self._with_seats(rows)
        return found

    async def claim_due(
        self, before: datetime, now: datetime, lease: timedelta, limit: int
    ) -> list[Booking]:
        if limit <= 0:
            return []
        due = (
            select(bookings.c.id)
            .where(
                bookings.c.status == BookingStatus.PENDING.value,
                bookings.c.hold_expires_at < before,
                or_(bookings.c.reconcile_after.is_(None), bookings.c.reconcile_after <= now),
            )
            .order_by(bookings.c.hold_expires_at, bookings.c.id)
            .limit(limit)
            # PostgreSQL: replicas skip the rows another one is claiming right now. SQLite
            # renders no FOR UPDATE; its single writer (BEGIN IMMEDIATE) serialises claimers.
            .with_for_update(skip_locked=True)
        )
        with database_errors("claim due bookings"):
            conn = self._conn
            ids = list((await conn.execute(due)).scalars().all())
            if not ids:
                return []
            await conn.execute(
                update(bookings).where(bookings.c.id.in_(ids)).values(reconcile_after=now + lease)
            )
            rows = (
                await conn.execute(
                    select(bookings)
                    .where(bookings.c.id.in_(ids))
                    .order_by(bookings.c.hold_expires_at, bookings.c.id)
                )
            ).all()
            found = await self._with_seats(rows)
        return found

    async def release_claims(self, booking_id: int) -> None:
        still_live = exists().where(
            bookings.c.id == booking_id, bookings.c.status.in_(LIVE_STATUSES)
        )
        with database_errors("release claims"):
            # A live booking keeps its claims whatever the caller asks: live means claimed.
            await self._conn.execute(
                update(booking_seats)
                .where(
                    booking_seats.c.booking_id == booking_id,
                    booking_seats.c.claimed,
                    ~still_live,
                )
                .values(claimed=False)
            )

    async def refunds_required(self, limit: int) -> list[Booking]:
        if limit <= 0:
            return []
        query = (
            select(bookings)
            .where(bookings.c.refund_required)
            .order_by(bookings.c.updated_at, bookings.c.id)
            .limit(limit)
        )
        with database_errors("list refunds"):
            rows = (await self._conn.execute(query)).all()
            found = await self._with_seats(rows)
        return found

    async def live_claims(self, show_id: int, seat_ids: Sequence[int]) -> dict[int, int]:
        if not seat_ids:
            return {}
        query = select(booking_seats.c.seat_id, booking_seats.c.booking_id).where(
            booking_seats.c.show_id == show_id,
            booking_seats.c.seat_id.in_(list(seat_ids)),
            booking_seats.c.claimed,
        )
        with database_errors("read claims"):
            rows = (await self._conn.execute(query)).all()
        return {row.seat_id: row.booking_id for row in rows}

    async def _claimed_elsewhere(self, booking: Booking) -> list[int]:
        rows = await self._conn.execute(
            select(booking_seats.c.seat_id).where(
                booking_seats.c.show_id == booking.show_id,
                booking_seats.c.seat_id.in_(booking.seat_ids),
                booking_seats.c.claimed,
                booking_seats.c.booking_id != booking.booking_id,
            )
        )
        return sorted(rows.scalars().all())

    async def _load_joined(self, where: Any) -> Booking | None:
        # One round trip: the booking row repeated once per seat, seats in booking order.
        query = (
            select(
                bookings,
                booking_seats.c.seat_id.label("s_seat_id"),
                booking_seats.c.seat_number.label("s_seat_number"),
                booking_seats.c.seat_type.label("s_seat_type"),
                booking_seats.c.price_minor.label("s_price_minor"),
            )
            .join(booking_seats, booking_seats.c.booking_id == bookings.c.id)
            .where(where)
            .order_by(booking_seats.c.position)
        )
        rows = (await self._conn.execute(query)).all()
        if not rows:
            return None
        first = rows[0]
        seats = [
            _seat(
                row.s_seat_id, row.s_seat_number, row.s_seat_type, row.s_price_minor, first.currency
            )
            for row in rows
        ]
        booking = _booking(first, seats)
        self._seen[booking.booking_id] = (booking.version, booking.status)
        return booking

    async def _with_seats(self, rows: Sequence[Row[Any]]) -> list[Booking]:
        if not rows:
            return []
        ids = [row.id for row in rows]
        seat_rows = (
            await self._conn.execute(
                select(booking_seats)
                .where(booking_seats.c.booking_id.in_(ids))
                .order_by(booking_seats.c.booking_id, booking_seats.c.position)
            )
        ).all()
        by_booking: dict[int, list[Row[Any]]] = {}
        for seat_row in seat_rows:
            by_booking.setdefault(seat_row.booking_id, []).append(seat_row)
        found = []
        for row in rows:
            seats = [
                _seat(s.seat_id, s.seat_number, s.seat_type, s.price_minor, row.currency)
                for s in by_booking.get(row.id, [])
            ]
            booking = _booking(row, seats)
            self._seen[booking.booking_id] = (booking.version, booking.status)
            found.append(booking)
        return found


class SqlOutbox:
    """The Outbox port's writing side: rows commit or vanish with the unit of work."""

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    async def put(self, messages: Sequence[OutboxMessage]) -> None:
        if not messages:
            return
        rows = list(outbox_rows(messages))
        with database_errors("write outbox"):
            driver = await self._uow.driver(write=True)
            if driver is not None:
                # One pipelined executemany of a prepared statement. The JSON columns go as
                # text made by json.dumps, as SQLAlchemy's JSON type would (its asyncpg codec
                # for json takes text).
                await driver.executemany(
                    _PG_OUTBOX,
                    [
                        (
                            row["message_id"],
                            row["booking_id"],
                            row["kind"],
                            row["name"],
                            json.dumps(row["payload"]),
                            json.dumps(row["headers"]),
                            aware(row["created_at"]),
                            aware(row["available_at"]),
                            row["attempts"],
                            row["last_error"],
                            aware(row["sent_at"]),
                        )
                        for row in rows
                    ],
                )
                return
            # executemany parameters: one cached statement whatever the number of messages.
            await self._uow.connection.execute(insert(outbox), rows)


class SqlAuditLog:
    """The AuditLog port: one row per status change, read back in the order recorded."""

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    async def record(self, entry: AuditEntry) -> None:
        with database_errors("write audit"):
            driver = await self._uow.driver(write=True)
            if driver is not None:
                await driver.execute(_PG_AUDIT, *_audit_values(entry))
                return
            await self._uow.connection.execute(
                insert(audit_log).values(
                    booking_id=entry.booking_id,
                    actor=entry.actor,
                    at=entry.at,
                    from_status=entry.from_status.value if entry.from_status else None,
                    to_status=entry.to_status.value,
                    reason=entry.reason,
                    refund_required=entry.refund_required,
                )
            )

    async def trail(self, booking_id: int) -> list[AuditEntry]:
        query = (
            select(audit_log).where(audit_log.c.booking_id == booking_id).order_by(audit_log.c.id)
        )
        with database_errors("read audit"):
            rows = (await self._uow.connection.execute(query)).all()
        return [
            AuditEntry(
                booking_id=row.booking_id,
                actor=row.actor,
                at=row.at,
                from_status=BookingStatus(row.from_status) if row.from_status else None,
                to_status=BookingStatus(row.to_status),
                reason=row.reason,
                refund_required=row.refund_required,
            )
            for row in rows
        ]


async def get_plain(driver: Any, booking_id: int) -> Booking | None:
    """`UnitOfWorkFactory.get` on PostgreSQL: the booking and its seats in one SELECT."""
    return booking_of_rows(await driver.fetch(_PG_GET, booking_id))


def booking_of_rows(rows: Sequence[Any]) -> Booking | None:
    """The booking of `_PG_SELECT_JOINED` rows (one per seat), or None for no rows."""
    if not rows:
        return None
    first = rows[0]
    currency = first["currency"]
    seats = [
        _seat(
            row["s_seat_id"],
            row["s_seat_number"],
            row["s_seat_type"],
            row["s_price_minor"],
            currency,
        )
        for row in rows
    ]
    return _booking(first, seats)


async def write_plain(driver: Any, write: BookingWrite) -> None:
    """`UnitOfWorkFactory.write` on PostgreSQL: one statement, which is its own transaction.

    The booking's INSERT (or conditional UPDATE), its seats or claims, outbox rows and audit
    row are the data-modifying CTEs of one statement, sent without BEGIN or COMMIT: one round
    trip, all or nothing. A live-claim conflict aborts the statement; only then a second
    query names the seats taken."""
    booking = write.booking
    outbox = bool(write.messages)
    entry = write.audit
    variant = (outbox, entry is not None)
    tail = (
        *(_outbox_arrays(write.messages) if outbox else ()),
        *(_audit_values(entry) if entry is not None else ()),
    )
    try:
        if write.expected_version is None:
            await driver.execute(_PG_WRITE_NEW[variant], *_new_booking_args(booking), *tail)
            return
        live = booking.status.is_live
        saved = await driver.fetchval(
            _PG_WRITE_SAVED[variant],
            booking.booking_id,
            write.expected_version,
            *_mutable_args(booking),
            # Live: claim what is not claimed (a late payment); released on request otherwise.
            live,
            live or write.release_claims,
            *tail,
        )
    except asyncpg.UniqueViolationError as error:
        if error.constraint_name == "pk_bookings":
            raise DuplicateBookingId(f"booking id {booking.booking_id} is taken") from error
        if error.constraint_name != _LIVE_CLAIM_INDEX:
            raise
        taken = await driver.fetchval(
            _PG_CLAIMED_ELSEWHERE, booking.show_id, list(booking.seat_ids), booking.booking_id
        )
        raise SeatsAlreadyClaimed(sorted(taken) or list(booking.seat_ids)) from error
    if not saved:
        raise StaleBooking(booking.booking_id)


def _outbox_arrays(messages: Sequence[OutboxMessage]) -> tuple[list[Any], ...]:
    """The outbox rows as one array per column of `_PG_WRITE_OUTBOX`'s unnest."""
    rows = list(outbox_rows(messages))
    return (
        [row["message_id"] for row in rows],
        [row["booking_id"] for row in rows],
        [row["kind"] for row in rows],
        [row["name"] for row in rows],
        [json.dumps(row["payload"]) for row in rows],
        [json.dumps(row["headers"]) for row in rows],
        [aware(row["created_at"]) for row in rows],
        [aware(row["available_at"]) for row in rows],
        [row["attempts"] for row in rows],
        [row["last_error"] for row in rows],
        [aware(row["sent_at"]) for row in rows],
    )


def _audit_values(entry: AuditEntry) -> tuple[Any, ...]:
    """The audit row's columns, in the order of `_PG_AUDIT` and of the audit CTE's SELECT."""
    return (
        entry.booking_id,
        entry.actor,
        aware(entry.at),
        entry.from_status.value if entry.from_status else None,
        entry.to_status.value,
        entry.reason,
        entry.refund_required,
    )


def outbox_rows(messages: Iterable[OutboxMessage]) -> Iterable[dict[str, Any]]:
    """Table rows for new outbox messages; a message without `created_at` is stamped now."""
    stamp = datetime.now(UTC)
    for message in messages:
        created = message.created_at or stamp
        yield {
            "message_id": message.message_id,
            "booking_id": message.booking_id,
            "kind": message.kind.value,
            "name": message.name,
            "payload": dict(message.payload),
            "headers": dict(message.headers),
            "created_at": created,
            "available_at": created,
            "attempts": message.attempts,
            "last_error": message.last_error,
            "sent_at": message.sent_at,
        }


# The hot statements on PostgreSQL, sent as plain prepared statements (see SqlUnitOfWork.driver).
# Timestamps are aware datetimes for timestamptz; `aware` refuses naive ones as UtcDateTime does.
# Literal SQL only: every value is a bind parameter ($n), in the order of `_booking_args`.


def _new_booking_ctes(*, skip_conflicts: bool, then: str = "") -> str:
    """The CTEs `b` (the booking row) and `s` (its seat rows) of a new booking, on $1-$21
    (`_new_booking_args`). With `skip_conflicts` a taken id or live claim is skipped (ON
    CONFLICT DO NOTHING) and `s` answers the seats that went in; without, either aborts the
    statement. `then` follows them. Built once at import from constants."""
    skip_id = "\n    ON CONFLICT (id) DO NOTHING" if skip_conflicts else ""
    skip_seat = (
        "\n    ON CONFLICT (show_id, seat_id) WHERE claimed DO NOTHING\n    RETURNING seat_id"
        if skip_conflicts
        else ""
    )
    return f"""
WITH b AS (
    INSERT INTO bookings (id, user_id, show_id, total_minor, currency, hold_expires_at,
        created_at, status, failure_reason, payment_session_id, payment_url,
        payment_expires_at, refund_required, version, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15){skip_id}
    RETURNING id
), s AS (
    INSERT INTO booking_seats
        (booking_id, seat_id, position, show_id, seat_number, seat_type, price_minor, claimed)
    SELECT b.id, u.seat_id, u.position, $3, u.seat_number, u.seat_type, u.price_minor, $16
    FROM b, unnest($17::bigint[], $18::smallint[], $19::text[], $20::text[], $21::bigint[])
        AS u (seat_id, position, seat_number, seat_type, price_minor)
    -- One lock order for every transaction (show, seat): two bookings racing for
    -- overlapping seats then wait for each other instead of deadlocking.
    ORDER BY u.seat_id{skip_seat}
){then}"""  # noqa: S608


_PG_ADD = _new_booking_ctes(
    skip_conflicts=True,
    then="\nSELECT EXISTS (SELECT FROM b) AS added, ARRAY(SELECT seat_id FROM s) AS seats",
)
_PG_DELETE = "DELETE FROM bookings WHERE id = $1"
_PG_SELECT_JOINED = """
SELECT b.id, b.user_id, b.show_id, b.total_minor, b.currency, b.hold_expires_at, b.created_at,
    b.status, b.failure_reason, b.payment_session_id, b.payment_url, b.payment_expires_at,
    b.refund_required, b.version, b.updated_at,
    s.seat_id AS s_seat_id, s.seat_number AS s_seat_number, s.seat_type AS s_seat_type,
    s.price_minor AS s_price_minor
FROM bookings AS b JOIN booking_seats AS s ON s.booking_id = b.id
"""
_PG_GET = _PG_SELECT_JOINED + "WHERE b.id = $1 ORDER BY s.position"
_PG_BY_SESSION = _PG_SELECT_JOINED + "WHERE b.payment_session_id = $1 ORDER BY s.position"
_PG_SAVE = """
UPDATE bookings SET status = $3, failure_reason = $4, payment_session_id = $5, payment_url = $6,
    payment_expires_at = $7, refund_required = $8, version = $9, updated_at = $10
WHERE id = $1 AND version = $2
"""
_PG_AUDIT = """
INSERT INTO audit_log (booking_id, actor, at, from_status, to_status, reason, refund_required)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""

_PG_OUTBOX = """
INSERT INTO outbox (message_id, booking_id, kind, name, payload, headers, created_at,
    available_at, attempts, last_error, sent_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
"""


_LIVE_CLAIM_INDEX = "uq_booking_seats_live_claim"


def _one_statement_write(
    head: str, *, guard: str, first: int, answer: str, outbox: bool, audit: bool
) -> str:
    """`head` (the booking's own CTEs), then the outbox (with `outbox`) and audit (with `audit`)
    CTEs, then `answer`.

    The outbox and audit rows go in only if the booking's own write (CTE `guard`) did. The
    outbox rows are one array per column, parameters `first` onwards; the audit row (a write
    has none or one) is seven plain parameters after them. Most writes carry no outbox row (a
    create, the attach of its checkout): their variant has no outbox CTE, which spares the
    database an INSERT into the outbox and its indexes that would write nothing, and the client
    eleven empty arrays to encode. Built once at import from constants: no value is ever part
    of the text."""
    o = [f"${i}" for i in range(first, first + 11)]
    audit_first = first + 11 if outbox else first
    a = [f"${i}" for i in range(audit_first, audit_first + 7)]
    outbox_cte = f"""
, o AS (
    INSERT INTO outbox (message_id, booking_id, kind, name, payload, headers, created_at,
        available_at, attempts, last_error, sent_at)
    SELECT m.message_id, m.booking_id, m.kind, m.name, m.payload::json, m.headers::json,
        m.created_at, m.available_at, m.attempts, m.last_error, m.sent_at
    FROM {guard}, unnest({o[0]}::text[], {o[1]}::bigint[], {o[2]}::text[], {o[3]}::text[],
        {o[4]}::text[], {o[5]}::text[], {o[6]}::timestamptz[], {o[7]}::timestamptz[],
        {o[8]}::int[], {o[9]}::text[], {o[10]}::timestamptz[]) WITH ORDINALITY
        AS m (message_id, booking_id, kind, name, payload, headers, created_at, available_at,
            attempts, last_error, sent_at, ord)
    -- The relay keeps each booking's order by `seq`: rows go in as listed.
    ORDER BY m.ord
)"""  # noqa: S608
    audit_cte = f"""
, a AS (
    INSERT INTO audit_log (booking_id, actor, at, from_status, to_status, reason,
        refund_required)
    SELECT {a[0]}::bigint, {a[1]}::text, {a[2]}::timestamptz, {a[3]}::text, {a[4]}::text,
        {a[5]}::text, {a[6]}::boolean
    FROM {guard}
)"""  # noqa: S608
    return f"""{head}{outbox_cte if outbox else ""}{audit_cte if audit else ""}
{answer}"""


# Each statement comes in four variants, keyed by (outbox rows?, audit row?).
_VARIANTS = [(outbox, audit) for outbox in (False, True) for audit in (False, True)]


# A new booking: no ON CONFLICT, so a taken id or a live claim aborts the whole statement.
_PG_WRITE_NEW = {
    (outbox, audit): _one_statement_write(
        _new_booking_ctes(skip_conflicts=False),
        guard="b",
        first=22,
        answer="SELECT 1",
        outbox=outbox,
        audit=audit,
    )
    for outbox, audit in _VARIANTS
}
# A save on the expected version; its seats' claims follow the new status where asked ($11:
# claimed or not, $12: whether to touch them), and a re-claim of a taken seat aborts it all.
_PG_WRITE_SAVED = {
    (outbox, audit): _one_statement_write(
        """
WITH v AS (
    UPDATE bookings SET status = $3, failure_reason = $4, payment_session_id = $5,
        payment_url = $6, payment_expires_at = $7, refund_required = $8, version = $9,
        updated_at = $10
    WHERE id = $1 AND version = $2
    RETURNING id
), c AS (
    UPDATE booking_seats SET claimed = $11
    WHERE $12 AND booking_id = $1 AND claimed <> $11 AND EXISTS (SELECT FROM v)
)""",
        guard="v",
        first=13,
        answer="SELECT EXISTS (SELECT FROM v)",
        outbox=outbox,
        audit=audit,
    )
    for outbox, audit in _VARIANTS
}
_PG_CLAIMED_ELSEWHERE = """
SELECT ARRAY(SELECT seat_id FROM booking_seats
    WHERE show_id = $1 AND seat_id = ANY($2::bigint[]) AND claimed AND booking_id <> $3)
"""


def aware(value: datetime | None) -> datetime | None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise PortError(f"naive datetime {value!r}: timestamps must be timezone-aware")
    return value


# The bookings columns, in the order of `_PG_ADD`'s INSERT and `_PG_SAVE`'s SET: the plain
# statements take the values as positional arguments, SQLAlchemy Core as a mapping of these names.
_MUTABLE_COLUMNS = (
    "status",
    "failure_reason",
    "payment_session_id",
    "payment_url",
    "payment_expires_at",
    "refund_required",
    "version",
    "updated_at",
)
_BOOKING_COLUMNS = (
    "id",
    "user_id",
    "show_id",
    "total_minor",
    "currency",
    "hold_expires_at",
    "created_at",
    *_MUTABLE_COLUMNS,
)


def _booking_args(booking: Booking) -> tuple[Any, ...]:
    """The values of `_BOOKING_COLUMNS`, in order."""
    return (
        booking.booking_id,
        booking.user_id,
        booking.show_id,
        booking.total.minor,
        booking.total.currency,
        aware(booking.hold_expires_at),
        aware(booking.created_at),
        *_mutable_args(booking),
    )


def _new_booking_args(booking: Booking) -> tuple[Any, ...]:
    """The arguments of a new booking's CTEs ($1-$21 of `_PG_ADD` and `_PG_WRITE_NEW`): its
    columns, whether its seats are claimed, then one array per seat column in seat order."""
    seats = sorted(enumerate(booking.seats), key=lambda item: item[1].seat_id)
    return (
        *_booking_args(booking),
        booking.status.is_live,
        [seat.seat_id for _, seat in seats],
        [position for position, _ in seats],
        [seat.seat_number for _, seat in seats],
        [seat.seat_type.value for _, seat in seats],
        [seat.price.minor for _, seat in seats],
    )


def _mutable_args(booking: Booking) -> tuple[Any, ...]:
    """The values of `_MUTABLE_COLUMNS`, in order."""
    payment = booking.payment
    return (
        booking.status.value,
        booking.failure_reason.value if booking.failure_reason else None,
        payment.session_id if payment else None,
        payment.url if payment else None,
        aware(payment.expires_at) if payment else None,
        booking.refund_required,
        booking.version,
        aware(booking.updated_at),
    )


def _booking_row(booking: Booking) -> dict[str, Any]:
    return dict(zip(_BOOKING_COLUMNS, _booking_args(booking), strict=True))


def _mutable_row(booking: Booking) -> dict[str, Any]:
    return dict(zip(_MUTABLE_COLUMNS, _mutable_args(booking), strict=True))


def _seat_row(booking: Booking, position: int, seat: Seat, *, claimed: bool) -> dict[str, Any]:
    return {
        "booking_id": booking.booking_id,
        "seat_id": seat.seat_id,
        "position": position,
        "show_id": booking.show_id,
        "seat_number": seat.seat_number,
        "seat_type": seat.seat_type.value,
        "price_minor": seat.price.minor,
        "claimed": claimed,
    }


def _seat(seat_id: int, seat_number: str, seat_type: str, price_minor: int, currency: str) -> Seat:
    return Seat(
        seat_id=seat_id,
        seat_number=seat_number,
        seat_type=SeatType(seat_type),
        price=Money(price_minor, currency),
    )


def _booking(row: Row[Any] | Mapping[str, Any], seats: list[Seat]) -> Booking:
    """A booking from its row: a SQLAlchemy Row or an asyncpg Record (both map names)."""
    values: Mapping[str, Any] = row._mapping if isinstance(row, Row) else row  # type: ignore[assignment]
    payment = None
    if values["payment_session_id"] is not None:
        payment = PaymentSession(
            session_id=values["payment_session_id"],
            url=values["payment_url"] or "",
            expires_at=_utc(values["payment_expires_at"]),
        )
    failure = values["failure_reason"]
    return Booking(
        booking_id=values["id"],
        user_id=values["user_id"],
        show_id=values["show_id"],
        seats=tuple(seats),
        total=Money(values["total_minor"], values["currency"]),
        status=BookingStatus(values["status"]),
        hold_expires_at=_utc(values["hold_expires_at"]),
        created_at=_utc(values["created_at"]),
        updated_at=_utc(values["updated_at"]),
        failure_reason=FailureReason(failure) if failure else None,
        payment=payment,
        refund_required=values["refund_required"],
        version=values["version"],
    )


def _utc(value: datetime) -> datetime:
    # UtcDateTime already answers UTC; asyncpg answers timestamptz in UTC too, this only
    # guarantees it (`astimezone` returns the same object when the zone is already UTC).
    return value if value.tzinfo is UTC else value.astimezone(UTC)
