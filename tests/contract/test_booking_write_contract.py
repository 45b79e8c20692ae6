"""The UnitOfWorkFactory.write contract (one booking change with its outbox rows and audit, all
or nothing) and its lone `get`, run on memory, SQLite and PostgreSQL (one statement each
there)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from booking.domain.booking import Booking, BookingStatus, FailureReason
from booking.ports.errors import DuplicateBookingId, SeatsAlreadyClaimed, StaleBooking
from booking.ports.outbox import MessageKind, OutboxMessage, OutboxStats
from booking.ports.repository import AuditEntry, BookingWrite
from tests.contract.test_outbox_contract import PAYLOAD
from tests.support.postgres import T0, Storage, make_booking, session_for

LEASE = timedelta(seconds=30)
LATER = T0 + timedelta(minutes=1)


def messages(booking_id: int, count: int) -> list[OutboxMessage]:
    return [
        OutboxMessage(
            message_id=str(uuid.uuid4()),
            booking_id=booking_id,
            kind=MessageKind.EVENT if n % 2 == 0 else MessageKind.ACTION,
            name=f"message-{n}",
            payload={**PAYLOAD, "n": n},
            headers={"__TypeId__": f"Type{n}"},
            created_at=T0 + timedelta(seconds=n),
        )
        for n in range(count)
    ]


def entry(booking: Booking, before: BookingStatus | None, actor: str = "user:1") -> AuditEntry:
    reason = booking.failure_reason.value if booking.failure_reason else None
    return AuditEntry(
        booking.booking_id,
        actor,
        booking.updated_at,
        before,
        booking.status,
        reason,
        booking.refund_required,
    )


def new(booking: Booking, count: int = 2) -> BookingWrite:
    return BookingWrite(
        booking,
        expected_version=None,
        messages=messages(booking.booking_id, count),
        audit=entry(booking, None),
    )


async def stored(storage: Storage, booking_id: int) -> tuple[Booking | None, list[AuditEntry]]:
    async with storage.uow() as uow:
        return await uow.bookings.get(booking_id), await uow.audit.trail(booking_id)


async def outbox_rows(storage: Storage) -> list[OutboxMessage]:
    return await storage.outbox.claim("reader", LATER, LEASE, 100)


async def test_a_new_booking_is_stored_with_its_outbox_rows_and_audit(storage: Storage) -> None:
    """The booking, its seats and claims, every outbox row (in order, intact) and the audit."""
    write = new(make_booking(10, seat_ids=[5, 3, 9]), count=3)
    await storage.uow.write(write)
    booking, trail = await stored(storage, 10)
    assert booking == write.booking
    assert trail == [write.audit]
    assert await outbox_rows(storage) == list(write.messages)
    async with storage.uow() as uow:
        assert await uow.bookings.live_claims(7, [3, 5, 9]) == {3: 10, 5: 10, 9: 10}


async def test_a_write_without_messages_or_audit_stores_the_booking_only(storage: Storage) -> None:
    await storage.uow.write(BookingWrite(make_booking(15), expected_version=None))
    booking, trail = await stored(storage, 15)
    assert booking == make_booking(15)
    assert trail == []
    assert await storage.outbox.stats() == OutboxStats(0, 0, None)


async def test_a_write_with_audit_and_no_messages_stores_no_outbox_row(storage: Storage) -> None:
    """The shape of a create and of the attach of its checkout: the booking, its claims and its
    audit rows, and nothing in the outbox."""
    created = new(make_booking(18, seat_ids=[6, 2]), count=0)
    await storage.uow.write(created)
    booking = await storage.uow.get(18)
    assert booking is not None
    version = booking.version
    booking.attach_payment(session_for(booking), LATER)
    attached = BookingWrite(booking, version, audit=entry(booking, BookingStatus.PENDING, "saga"))
    await storage.uow.write(attached)
    assert await stored(storage, 18) == (booking, [created.audit, attached.audit])
    assert await storage.outbox.stats() == OutboxStats(0, 0, None)
    async with storage.uow() as uow:
        assert await uow.bookings.live_claims(7, [2, 6]) == {2: 18, 6: 18}


async def test_a_write_with_messages_and_no_audit_stores_no_audit_row(storage: Storage) -> None:
    """Every mix of outbox rows and audit row goes in as given (a new booking and a save)."""
    created = BookingWrite(make_booking(19), expected_version=None, messages=messages(19, 2))
    await storage.uow.write(created)
    booking = await storage.uow.get(19)
    assert booking is not None
    version = booking.version
    booking.attach_payment(session_for(booking), LATER)
    saved = BookingWrite(booking, version, messages=messages(19, 1))
    await storage.uow.write(saved)
    assert await stored(storage, 19) == (booking, [])
    assert await outbox_rows(storage) == [*created.messages, *saved.messages]


async def test_a_lone_get_reads_what_is_committed(storage: Storage) -> None:
    """`get` answers what a new unit of work's `bookings.get` answers; None for an unknown id."""
    write = new(make_booking(16, seat_ids=[4, 2]), count=1)
    await storage.uow.write(write)
    assert await storage.uow.get(16) == write.booking
    assert await storage.uow.get(17) is None
    booking = await storage.uow.get(16)
    assert booking is not None
    version = booking.version
    booking.attach_payment(session_for(booking), LATER)
    await storage.uow.write(BookingWrite(booking, version))
    assert await storage.uow.get(16) == booking
    if storage.name == "postgres":  # readers beside an open writer (SQLite has one at a time)
        async with storage.uow() as open_block:
            await open_block.bookings.add(make_booking(18, seat_ids=[9]))
            assert await storage.uow.get(18) is None  # not committed yet
            await open_block.commit()
        assert await storage.uow.get(18) == make_booking(18, seat_ids=[9])


async def test_a_taken_booking_id_stores_nothing(storage: Storage) -> None:
    """DuplicateBookingId, and neither the second booking's seats, rows nor audit exist."""
    first = new(make_booking(20, seat_ids=[1]), count=1)
    await storage.uow.write(first)
    with pytest.raises(DuplicateBookingId):
        await storage.uow.write(new(make_booking(20, user_id=2, seat_ids=[2])))
    booking, trail = await stored(storage, 20)
    assert booking == first.booking
    assert trail == [first.audit]
    assert await outbox_rows(storage) == list(first.messages)
    async with storage.uow() as uow:
        assert await uow.bookings.live_claims(7, [1, 2]) == {1: 20}


async def test_a_taken_seat_stores_nothing_and_names_the_taken_seats(storage: Storage) -> None:
    """SeatsAlreadyClaimed names only the taken seats; nothing of the refused write exists."""
    first = new(make_booking(30, seat_ids=[1, 2, 3]), count=1)
    await storage.uow.write(first)
    with pytest.raises(SeatsAlreadyClaimed) as caught:
        await storage.uow.write(new(make_booking(31, seat_ids=[4, 3, 2])))
    assert caught.value.seat_ids == [2, 3]
    assert await stored(storage, 31) == (None, [])
    assert await outbox_rows(storage) == list(first.messages)
    async with storage.uow() as uow:
        assert await uow.bookings.live_claims(7, [1, 2, 3, 4]) == {1: 30, 2: 30, 3: 30}


async def test_a_save_on_the_read_version_stores_the_change(storage: Storage) -> None:
    await storage.uow.write(new(make_booking(40)))
    booking, _ = await stored(storage, 40)
    assert booking is not None
    version = booking.version
    booking.attach_payment(session_for(booking), LATER)
    save = BookingWrite(
        booking, version, messages(40, 1), entry(booking, BookingStatus.PENDING, "saga")
    )
    await storage.uow.write(save)
    again, trail = await stored(storage, 40)
    assert again == booking
    assert len(trail) == 2
    assert trail[1] == save.audit


async def test_a_stale_save_stores_nothing(storage: Storage) -> None:
    """StaleBooking on another version (or an unknown booking); no row, audit or claim moves."""
    created = new(make_booking(50), count=1)
    await storage.uow.write(created)
    booking, _ = await stored(storage, 50)
    assert booking is not None
    booking.fail(FailureReason.PAYMENT_INIT_FAILED, LATER)
    stale = BookingWrite(
        booking,
        booking.version + 5,
        messages(50, 2),
        entry(booking, BookingStatus.PENDING),
        release_claims=True,
    )
    with pytest.raises(StaleBooking) as caught:
        await storage.uow.write(stale)
    assert caught.value.booking_id == 50
    with pytest.raises(StaleBooking):
        await storage.uow.write(BookingWrite(make_booking(51), 1, audit=entry(booking, None)))
    assert await stored(storage, 50) == (created.booking, [created.audit])
    assert await stored(storage, 51) == (None, [])
    assert await outbox_rows(storage) == list(created.messages)
    async with storage.uow() as uow:
        assert await uow.bookings.live_claims(7, [1, 2]) == {1: 50, 2: 50}


@pytest.mark.parametrize("release", [False, True])
async def test_a_failed_booking_frees_its_claims_only_when_asked(
    storage: Storage, release: bool
) -> None:
    await storage.uow.write(new(make_booking(60)))
    booking, _ = await stored(storage, 60)
    assert booking is not None
    version = booking.version
    booking.fail(FailureReason.THEATER_LOCK_FAILED, LATER)
    await storage.uow.write(
        BookingWrite(
            booking, version, audit=entry(booking, BookingStatus.PENDING), release_claims=release
        )
    )
    async with storage.uow() as uow:
        claims = await uow.bookings.live_claims(7, [1, 2])
    assert claims == ({} if release else {1: 60, 2: 60})


async def test_a_live_booking_keeps_its_claims_even_when_asked_to_free_them(
    storage: Storage,
) -> None:
    await storage.uow.write(new(make_booking(70)))
    booking, _ = await stored(storage, 70)
    assert booking is not None
    version = booking.version
    booking.attach_payment(session_for(booking), LATER)
    await storage.uow.write(BookingWrite(booking, version, release_claims=True))
    async with storage.uow() as uow:
        assert await uow.bookings.live_claims(7, [1, 2]) == {1: 70, 2: 70}


async def expired_and_released(storage: Storage, booking_id: int, seat_ids: list[int]) -> Booking:
    """A booking that expired with a payment session and gave its claims back."""
    await storage.uow.write(new(make_booking(booking_id, seat_ids=seat_ids), count=0))
    booking, _ = await stored(storage, booking_id)
    assert booking is not None
    version = booking.version
    booking.attach_payment(session_for(booking), LATER)
    booking.fail(FailureReason.HOLD_EXPIRED, T0 + timedelta(minutes=6))
    await storage.uow.write(BookingWrite(booking, version, release_claims=True))
    return booking


async def test_a_late_confirmation_claims_the_seats_again(storage: Storage) -> None:
    booking = await expired_and_released(storage, 80, [1, 2])
    version = booking.version
    booking.confirm_late(T0 + timedelta(minutes=8))
    await storage.uow.write(
        BookingWrite(booking, version, audit=entry(booking, BookingStatus.FAILED))
    )
    async with storage.uow() as uow:
        assert await uow.bookings.live_claims(7, [1, 2]) == {1: 80, 2: 80}
    again, _ = await stored(storage, 80)
    assert again is not None
    assert again.status is BookingStatus.CONFIRMED


async def test_a_late_confirmation_of_taken_seats_stores_nothing(storage: Storage) -> None:
    """Re-claiming a seat another booking took raises SeatsAlreadyClaimed naming it, and the
    booking, its claims, the outbox and the audit stay as they were."""
    booking = await expired_and_released(storage, 90, [1, 2, 3])
    await storage.uow.write(new(make_booking(91, seat_ids=[3, 4]), count=0))
    before, trail = await stored(storage, 90)
    version = booking.version
    booking.confirm_late(T0 + timedelta(minutes=8))
    late = BookingWrite(booking, version, messages(90, 1), entry(booking, BookingStatus.FAILED))
    with pytest.raises(SeatsAlreadyClaimed) as caught:
        await storage.uow.write(late)
    assert caught.value.seat_ids == [3]
    assert await stored(storage, 90) == (before, trail)
    assert await storage.outbox.stats() == OutboxStats(0, 0, None)
    async with storage.uow() as uow:
        assert await uow.bookings.live_claims(7, [1, 2, 3, 4]) == {3: 91, 4: 91}
