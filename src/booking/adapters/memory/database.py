"""The in-memory database: bookings, seat claims, outbox, audit and idempotency keys.

A unit of work holds one lock for its whole life (like SQLite's single writer) and stages its
writes; commit applies them at once. It enforces the same rules as the SQL adapters: the
live-claim rule, conditional updates on version, leases on outbox rows and due bookings.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self

from booking.domain.booking import Booking, BookingStatus
from booking.ports.errors import (
    DatabaseUnavailable,
    DuplicateBookingId,
    SeatsAlreadyClaimed,
    StaleBooking,
)
from booking.ports.idempotency import (
    BeginOutcome,
    InFlight,
    KeyReused,
    Replay,
    Started,
    StoredResponse,
)
from booking.ports.outbox import OutboxMessage, OutboxStats
from booking.ports.repository import AuditEntry, BookingWrite, PageCursor, stage_write


@dataclass(slots=True)
class _Row:
    seq: int
    message: OutboxMessage
    available_at: datetime
    attempts: int = 0
    last_error: str | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    sent_at: datetime | None = None

    def view(self) -> OutboxMessage:
        return replace(
            self.message, attempts=self.attempts, sent_at=self.sent_at, last_error=self.last_error
        )


@dataclass(slots=True)
class _State:
    bookings: dict[int, Booking] = field(default_factory=dict)
    claims: dict[tuple[int, int], int] = field(default_factory=dict)
    reconcile_after: dict[int, datetime] = field(default_factory=dict)
    outbox: list[_Row] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)


def _snapshot(state: _State) -> _State:
    """Copy-on-enter keeps rollback trivial; the harness' data sets are small."""
    return _State(
        bookings=dict(state.bookings),
        claims=dict(state.claims),
        reconcile_after=dict(state.reconcile_after),
        outbox=list(state.outbox),
        audit=list(state.audit),
    )


def _fresh(booking: Booking) -> Booking:
    return replace(booking, events=[])


class MemoryDatabase:
    def __init__(self) -> None:
        self.state = _State()
        self.lock = asyncio.Lock()
        self.seq = itertools.count(1)
        self.down = False
        self.commits = 0

    def check(self) -> None:
        if self.down:
            raise DatabaseUnavailable("in-memory database switched off")


class _MemoryRepository:
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    @property
    def _s(self) -> _State:
        return self._uow.staged

    async def add(self, booking: Booking) -> None:
        if booking.booking_id in self._s.bookings:
            raise DuplicateBookingId(str(booking.booking_id))
        self._claim(booking)
        self._s.bookings[booking.booking_id] = _fresh(booking)

    def _claim(self, booking: Booking) -> None:
        taken = [
            s
            for s in booking.seat_ids
            if self._s.claims.get((booking.show_id, s), booking.booking_id) != booking.booking_id
        ]
        if taken:
            raise SeatsAlreadyClaimed(taken)
        for seat in booking.seat_ids:
            self._s.claims[(booking.show_id, seat)] = booking.booking_id

    async def get(self, booking_id: int) -> Booking | None:
        found = self._s.bookings.get(booking_id)
        return _fresh(found) if found else None

    async def by_session(self, session_id: str) -> Booking | None:
        for booking in self._s.bookings.values():
            if booking.payment and booking.payment.session_id == session_id:
                return _fresh(booking)
        return None

    async def save(self, booking: Booking, expected_version: int) -> None:
        stored = self._s.bookings.get(booking.booking_id)
        if stored is None or stored.version != expected_version:
            raise StaleBooking(booking.booking_id)
        if booking.status.is_live and not stored.status.is_live:
            self._claim(booking)
        self._s.bookings[booking.booking_id] = _fresh(booking)

    async def list_for_user(
        self,
        user_id: int,
        *,
        status: BookingStatus | None,
        limit: int,
        after: PageCursor | None,
    ) -> list[Booking]:
        rows = [
            b
            for b in self._s.bookings.values()
            if b.user_id == user_id and (status is None or b.status is status)
        ]
        rows.sort(key=lambda b: (b.created_at, b.booking_id), reverse=True)
        if after is not None:
            rows = [
                b
                for b in rows
                if (b.created_at, b.booking_id) < (after.created_at, after.booking_id)
            ]
        return [_fresh(b) for b in rows[:limit]]

    async def claim_due(
        self, before: datetime, now: datetime, lease: timedelta, limit: int
    ) -> list[Booking]:
        due = [
            b
            for b in self._s.bookings.values()
            if b.status is BookingStatus.PENDING
            and b.hold_expires_at < before
            and self._s.reconcile_after.get(b.booking_id, now) <= now
        ]
        due.sort(key=lambda b: (b.hold_expires_at, b.booking_id))
        for booking in due[:limit]:
            self._s.reconcile_after[booking.booking_id] = now + lease
        return [_fresh(b) for b in due[:limit]]

    async def release_claims(self, booking_id: int) -> None:
        booking = self._s.bookings.get(booking_id)
        if booking is not None and booking.status.is_live:
            return  # a live booking always holds its seats
        for key in [k for k, owner in self._s.claims.items() if owner == booking_id]:
            del self._s.claims[key]

    async def refunds_required(self, limit: int) -> list[Booking]:
        rows = [b for b in self._s.bookings.values() if b.refund_required]
        rows.sort(key=lambda b: b.updated_at)
        return [_fresh(b) for b in rows[:limit]]

    async def live_claims(self, show_id: int, seat_ids: Sequence[int]) -> dict[int, int]:
        return {s: self._s.claims[(show_id, s)] for s in seat_ids if (show_id, s) in self._s.claims}


class _MemoryOutbox:
    def __init__(self, uow: MemoryUnitOfWork, db: MemoryDatabase) -> None:
        self._uow = uow
        self._db = db

    async def put(self, messages: Sequence[OutboxMessage]) -> None:
        for message in messages:
            created = message.created_at
            if created is None:
                raise ValueError("outbox messages carry their creation time")
            self._uow.staged.outbox.append(_Row(next(self._db.seq), message, created))


class _MemoryAudit:
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    async def record(self, entry: AuditEntry) -> None:
        self._uow.staged.audit.append(entry)

    async def trail(self, booking_id: int) -> list[AuditEntry]:
        return [e for e in self._uow.staged.audit if e.booking_id == booking_id]


class MemoryUnitOfWork:
    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db
        self.staged = db.state
        self.bookings = _MemoryRepository(self)
        self.outbox = _MemoryOutbox(self, db)
        self.audit = _MemoryAudit(self)
        self.committed = False

    async def __aenter__(self) -> Self:
        self._db.check()
        await asyncio.sleep(0)  # a suspension point, as a connection checkout has
        await self._db.lock.acquire()
        self.staged = _snapshot(self._db.state)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._db.lock.release()

    async def commit(self) -> None:
        self._db.check()
        self._db.state = self.staged
        self._db.commits += 1
        self.committed = True
        self.staged = _snapshot(self.staged)

    async def rollback(self) -> None:
        self.staged = _snapshot(self._db.state)


class MemoryUnitOfWorkFactory:
    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db

    def __call__(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self.db)

    async def write(self, write: BookingWrite) -> None:
        async with self() as tx:
            await stage_write(tx, write)
            await tx.commit()

    async def get(self, booking_id: int) -> Booking | None:
        async with self() as tx:
            return await tx.bookings.get(booking_id)

    async def ping(self) -> None:
        self.db.check()


class MemoryOutboxStore:
    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    @property
    def _rows(self) -> list[_Row]:
        return self._db.state.outbox

    async def claim(
        self, owner: str, now: datetime, lease: timedelta, limit: int
    ) -> list[OutboxMessage]:
        self._db.check()
        blocked: set[tuple[int, str]] = set()
        taken: list[_Row] = []
        for row in self._rows:
            if row.sent_at is not None:
                continue
            stream = (row.message.booking_id, row.message.kind.value)
            free = row.available_at <= now and (row.lease_until is None or row.lease_until <= now)
            if stream in blocked or not free or len(taken) >= limit:
                blocked.add(stream)
                continue
            taken.append(row)
        for row in taken:
            row.lease_owner, row.lease_until = owner, now + lease
        return [row.view() for row in taken]

    def _leased(self, message_id: str, owner: str) -> _Row | None:
        for row in self._rows:
            if row.message.message_id == message_id and row.lease_owner == owner:
                return row
        return None

    async def mark_sent(self, message_id: str, owner: str, now: datetime) -> None:
        self._db.check()
        row = self._leased(message_id, owner)
        if row is not None and row.sent_at is None:
            row.sent_at, row.lease_owner, row.lease_until = now, None, None

    async def mark_retry(
        self, message_id: str, owner: str, error: str, available_at: datetime
    ) -> None:
        self._db.check()
        row = self._leased(message_id, owner)
        if row is not None and row.sent_at is None:
            row.attempts += 1
            row.last_error = error[:500]
            row.available_at = available_at
            row.lease_owner, row.lease_until = None, None

    async def requeue(self, message_id: str, now: datetime) -> bool:
        self._db.check()
        for row in self._rows:
            if row.message.message_id == message_id:
                row.sent_at, row.available_at, row.lease_owner, row.lease_until = (
                    None,
                    now,
                    None,
                    None,
                )
                return True
        return False

    async def stats(self) -> OutboxStats:
        self._db.check()
        pending = [r for r in self._rows if r.sent_at is None]
        oldest = min((r.message.created_at for r in pending if r.message.created_at), default=None)
        return OutboxStats(len(pending), sum(1 for r in pending if r.attempts), oldest)

    async def recent(self, limit: int, *, pending_only: bool = False) -> list[OutboxMessage]:
        self._db.check()
        rows = [r for r in self._rows if not pending_only or r.sent_at is None]
        return [r.view() for r in reversed(rows[-limit:])] if limit else []


@dataclass(slots=True)
class _Key:
    fingerprint: str
    locked_until: datetime | None
    response: StoredResponse | None = None
    expires_at: datetime | None = None


class MemoryIdempotencyStore:
    def __init__(self) -> None:
        self._keys: dict[tuple[str, str], _Key] = {}

    async def begin(
        self,
        scope: str,
        key: str,
        fingerprint: str,
        now: datetime,
        in_flight_for: timedelta,
    ) -> BeginOutcome:
        found = self._keys.get((scope, key))
        expired = found is not None and (
            (
                found.response is None
                and found.locked_until is not None
                and found.locked_until <= now
            )
            or (found.expires_at is not None and found.expires_at <= now)
        )
        if found is None or expired:
            self._keys[(scope, key)] = _Key(fingerprint, now + in_flight_for)
            return Started()
        if found.fingerprint != fingerprint:
            return KeyReused()
        if found.response is None:
            return InFlight()
        return Replay(found.response)

    async def complete(
        self, scope: str, key: str, response: StoredResponse, now: datetime, keep_for: timedelta
    ) -> None:
        found = self._keys.get((scope, key))
        if found is not None:
            found.response, found.locked_until, found.expires_at = response, None, now + keep_for

    async def forget(self, scope: str, key: str) -> None:
        self._keys.pop((scope, key), None)
