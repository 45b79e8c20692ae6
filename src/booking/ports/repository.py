"""BookingRepository and UnitOfWork: the durable record of bookings, their claims and audit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol, Self

from booking.domain.booking import Booking, BookingStatus
from booking.ports.outbox import Outbox, OutboxMessage


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One status change of a booking: who, when, from, to, why."""

    booking_id: int
    actor: str
    at: datetime
    from_status: BookingStatus | None
    to_status: BookingStatus
    reason: str | None
    refund_required: bool = False


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Keyset position for newest-first listings: (created_at, booking_id) of the last row."""

    created_at: datetime
    booking_id: int


class BookingRepository(Protocol):
    """Contract:

    - Live-claim rule: a show-seat has at most one PENDING or CONFIRMED booking. `add` and a
      `save` that makes a booking live again raise `SeatsAlreadyClaimed` (naming the seats)
      instead of breaking it; the store itself enforces it, not a read before the write.
    - `add` raises `DuplicateBookingId` when the id is taken.
    - `save` is a conditional update on `expected_version`: if the stored booking is not at that
      version it raises `StaleBooking` and changes nothing. It stores the booking's new version
      and every field (status, reason, payment session, refund flag, updated_at). It does not
      free claims (see `release_claims`); when the booking becomes live again (a late payment
      re-confirming a FAILED booking) it re-claims the seats, or raises `SeatsAlreadyClaimed`.
    - Reads return fresh aggregates with no pending events.
    - Nothing is visible to others before the unit of work commits.
    """

    async def add(self, booking: Booking) -> None: ...

    async def get(self, booking_id: int) -> Booking | None: ...

    async def by_session(self, session_id: str) -> Booking | None: ...

    async def save(self, booking: Booking, expected_version: int) -> None: ...

    async def list_for_user(
        self,
        user_id: int,
        *,
        status: BookingStatus | None,
        limit: int,
        after: PageCursor | None,
    ) -> list[Booking]:
        """The user's bookings, newest first (created_at, then id, descending), after a cursor."""
        ...

    async def claim_due(
        self, before: datetime, now: datetime, lease: timedelta, limit: int
    ) -> list[Booking]:
        """PENDING bookings whose hold expires before `before`, oldest hold first, leased.

        A booking returned here is not returned again (to this or any replica) until `now +
        lease`: the lease is stored with the row in this unit of work, and rows another
        transaction is claiming are skipped (`FOR UPDATE SKIP LOCKED`), so replicas share the
        work and never check one booking twice at once."""
        ...

    async def release_claims(self, booking_id: int) -> None:
        """Free the seat claims of a booking that is no longer live.

        A FAILED or CANCELLED booking keeps its claims until its compensation (the Theater
        release) is done, so that a new booking of the same seats cannot be undone by it.
        Idempotent."""
        ...

    async def refunds_required(self, limit: int) -> list[Booking]: ...

    async def live_claims(self, show_id: int, seat_ids: Sequence[int]) -> dict[int, int]:
        """The live booking id of each claimed seat (free seats absent)."""
        ...


class AuditLog(Protocol):
    async def record(self, entry: AuditEntry) -> None: ...

    async def trail(self, booking_id: int) -> list[AuditEntry]: ...


class UnitOfWork(Protocol):
    """One short database transaction. Leaving the block without `commit` rolls back.

    No remote call (HTTP, Redis, Kafka) runs while a unit of work is open (invariant 8)."""

    @property
    def bookings(self) -> BookingRepository: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def audit(self) -> AuditLog: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


@dataclass(frozen=True, slots=True)
class BookingWrite:
    """One change of one booking with what goes with it, committed together or not at all.

    `expected_version` None adds the booking; otherwise it is saved on that version."""

    booking: Booking
    expected_version: int | None
    messages: Sequence[OutboxMessage] = ()
    audit: AuditEntry | None = None
    release_claims: bool = False


async def stage_write(tx: UnitOfWork, write: BookingWrite) -> None:
    """Stage `write` in an open unit of work with the repository's own calls (commit is left
    to the caller): the meaning of `UnitOfWorkFactory.write`, step by step."""
    booking = write.booking
    if write.expected_version is None:
        await tx.bookings.add(booking)
    else:
        await tx.bookings.save(booking, write.expected_version)
    if write.messages:
        await tx.outbox.put(write.messages)
    if write.release_claims:
        await tx.bookings.release_claims(booking.booking_id)
    if write.audit is not None:
        await tx.audit.record(write.audit)


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...

    async def write(self, write: BookingWrite) -> None:
        """Commit `write` as a unit of work of its own: `stage_write`, then `commit`.

        Raises what `add` or `save` raise (`DuplicateBookingId`, `SeatsAlreadyClaimed`,
        `StaleBooking`), and then nothing of the write is stored. An adapter may send it in
        fewer round trips than the calls it stands for (one statement on PostgreSQL)."""
        ...

    async def get(self, booking_id: int) -> Booking | None:
        """The booking as committed, read outside any unit of work: what `bookings.get` of a
        new unit of work answers. Raises `DatabaseUnavailable` when the database is down."""
        ...

    async def ping(self) -> None:
        """Raise `DatabaseUnavailable` unless the database answers."""
        ...
