"""The BookingRepository / UnitOfWork / AuditLog contract, run on memory, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone

import pytest

from booking.domain.booking import BookingStatus, FailureReason
from booking.ports.errors import DuplicateBookingId, SeatsAlreadyClaimed, StaleBooking
from booking.ports.repository import AuditEntry, PageCursor
from tests.support.postgres import T0, Storage, make_booking, session_for

LEASE = timedelta(seconds=30)


async def add_committed(storage: Storage, *bookings: object) -> None:
    async with storage.uow() as uow:
        for booking in bookings:
            await uow.bookings.add(booking)  # type: ignore[arg-type]
        await uow.commit()


async def test_add_then_get_round_trips_every_field(storage: Storage) -> None:
    """A stored booking reads back equal, seats in order, with aware UTC timestamps."""
    booking = make_booking(10, seat_ids=[5, 3, 9])
    version = booking.version
    booking.attach_payment(session_for(booking), T0 + timedelta(seconds=1))
    async with storage.uow() as uow:
        await uow.bookings.add(make_booking(10, seat_ids=[5, 3, 9]))
        await uow.bookings.save(booking, version)
        await uow.commit()
    async with storage.uow() as uow:
        loaded = await uow.bookings.get(10)
    assert loaded == booking
    assert loaded is not None
    assert [s.seat_id for s in loaded.seats] == [5, 3, 9]
    assert loaded.events == []
    for moment in (loaded.created_at, loaded.updated_at, loaded.hold_expires_at):
        assert moment.utcoffset() == timedelta(0)
    assert loaded.payment is not None
    assert loaded.payment.expires_at == T0 + timedelta(minutes=30)


async def test_timestamps_in_other_zones_keep_their_instant(storage: Storage) -> None:
    """A timestamp given at +05:30 reads back as the same instant."""
    ist = timezone(timedelta(hours=5, minutes=30))
    booking = make_booking(20, now=T0.astimezone(ist))
    await add_committed(storage, booking)
    async with storage.uow() as uow:
        loaded = await uow.bookings.get(20)
    assert loaded is not None
    assert loaded.created_at == T0
    assert loaded.hold_expires_at == T0 + timedelta(minutes=5)


async def test_get_and_by_session_answer_none_for_unknown(storage: Storage) -> None:
    """Reads of unknown ids and sessions answer None."""
    async with storage.uow() as uow:
        assert await uow.bookings.get(404) is None
        assert await uow.bookings.by_session("cs_unknown") is None


async def test_by_session_finds_the_booking_of_its_session(storage: Storage) -> None:
    """A booking is found by its payment session id."""
    booking = make_booking(30)
    version = booking.version
    booking.attach_payment(session_for(booking), T0)
    async with storage.uow() as uow:
        await uow.bookings.add(make_booking(30))
        await uow.bookings.save(booking, version)
        await uow.commit()
    async with storage.uow() as uow:
        found = await uow.bookings.by_session("cs_30")
    assert found == booking


async def test_leaving_without_commit_stores_nothing(storage: Storage) -> None:
    """A unit of work left without commit leaves no booking, claim, audit or outbox row."""
    async with storage.uow() as uow:
        await uow.bookings.add(make_booking(40, seat_ids=[1]))
        await uow.audit.record(AuditEntry(40, "user:1", T0, None, BookingStatus.PENDING, "created"))
    async with storage.uow() as uow:
        assert await uow.bookings.get(40) is None
        assert await uow.bookings.live_claims(7, [1]) == {}
        assert await uow.audit.trail(40) == []
    await add_committed(storage, make_booking(41, seat_ids=[1]))


async def test_rollback_discards_the_work_so_far(storage: Storage) -> None:
    """An explicit rollback discards what the unit of work did before it."""
    async with storage.uow() as uow:
        await uow.bookings.add(make_booking(50))
        await uow.rollback()
        await uow.bookings.add(make_booking(51))
        await uow.commit()
    async with storage.uow() as uow:
        assert await uow.bookings.get(50) is None
        assert await uow.bookings.get(51) is not None


async def test_an_error_in_the_block_rolls_back(storage: Storage) -> None:
    """An exception leaving the block rolls the unit of work back and propagates."""

    async def fail_midway() -> None:
        async with storage.uow() as uow:
            await uow.bookings.add(make_booking(55))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_midway()
    async with storage.uow() as uow:
        assert await uow.bookings.get(55) is None


async def test_duplicate_booking_id_is_refused(storage: Storage) -> None:
    """Adding a booking id that exists raises DuplicateBookingId and keeps the first."""
    await add_committed(storage, make_booking(60, seat_ids=[1]))
    async with storage.uow() as uow:
        with pytest.raises(DuplicateBookingId):
            await uow.bookings.add(make_booking(60, user_id=2, seat_ids=[2]))
        await uow.commit()
    async with storage.uow() as uow:
        stored = await uow.bookings.get(60)
        assert await uow.bookings.live_claims(7, [1, 2]) == {1: 60}
    assert stored is not None
    assert stored.user_id == 1


async def test_a_live_seat_cannot_be_claimed_twice(storage: Storage) -> None:
    """A second live booking of a claimed show-seat is refused, naming only the taken seats."""
    await add_committed(storage, make_booking(70, seat_ids=[1, 2, 3]))
    async with storage.uow() as uow:
        with pytest.raises(SeatsAlreadyClaimed) as caught:
            await uow.bookings.add(make_booking(71, seat_ids=[4, 3, 2]))
        assert caught.value.seat_ids == [2, 3]
        # The refused booking left nothing behind and the unit of work goes on.
        assert await uow.bookings.get(71) is None
        await uow.bookings.add(make_booking(72, seat_ids=[4, 5]))
        await uow.commit()
    async with storage.uow() as uow:
        claims = await uow.bookings.live_claims(7, [1, 2, 3, 4, 5, 6])
        assert await uow.bookings.get(71) is None
    assert claims == {1: 70, 2: 70, 3: 70, 4: 72, 5: 72}


async def test_claims_conflict_inside_one_unit_of_work(storage: Storage) -> None:
    """Two bookings of one seat in the same unit of work also conflict."""
    async with storage.uow() as uow:
        await uow.bookings.add(make_booking(80, seat_ids=[1]))
        with pytest.raises(SeatsAlreadyClaimed) as caught:
            await uow.bookings.add(make_booking(81, seat_ids=[1, 2]))
        await uow.commit()
    assert caught.value.seat_ids == [1]


async def test_the_same_seat_id_in_another_show_is_free(storage: Storage) -> None:
    """Claims are per show: seat 1 of show 7 and seat 1 of show 8 do not conflict."""
    show_7 = make_booking(90, show_id=7, seat_ids=[1])
    show_8 = make_booking(91, show_id=8, seat_ids=[1])
    await add_committed(storage, show_7, show_8)
    async with storage.uow() as uow:
        assert await uow.bookings.live_claims(7, [1]) == {1: 90}
        assert await uow.bookings.live_claims(8, [1]) == {1: 91}


async def test_save_is_a_conditional_update_on_the_version(storage: Storage) -> None:
    """A save from a stale version raises StaleBooking and changes nothing."""
    await add_committed(storage, make_booking(100))
    async with storage.uow() as uow:
        first = await uow.bookings.get(100)
    async with storage.uow() as uow:
        second = await uow.bookings.get(100)
    assert first is not None
    assert second is not None
    version = first.version
    first.attach_payment(session_for(first), T0 + timedelta(seconds=1))
    async with storage.uow() as uow:
        await uow.bookings.save(first, version)
        await uow.commit()
    second.fail(FailureReason.PAYMENT_INIT_FAILED, T0 + timedelta(seconds=2))
    async with storage.uow() as uow:
        with pytest.raises(StaleBooking) as caught:
            await uow.bookings.save(second, version)
        await uow.commit()
    assert caught.value.booking_id == 100
    async with storage.uow() as uow:
        stored = await uow.bookings.get(100)
    assert stored == first
    assert stored is not None
    assert stored.status is BookingStatus.PENDING


async def test_save_stores_status_reason_session_refund_and_version(storage: Storage) -> None:
    """Every field a transition changes is stored by save."""
    await add_committed(storage, make_booking(110))
    async with storage.uow() as uow:
        booking = await uow.bookings.get(110)
        assert booking is not None
        version = booking.version
        booking.attach_payment(session_for(booking), T0 + timedelta(seconds=1))
        booking.fail(FailureReason.HOLD_EXPIRED, T0 + timedelta(minutes=6))
        booking.require_refund(T0 + timedelta(minutes=7))
        await uow.bookings.save(booking, version)
        await uow.commit()
    async with storage.uow() as uow:
        stored = await uow.bookings.get(110)
        refunds = await uow.bookings.refunds_required(10)
    assert stored == booking
    assert stored is not None
    assert stored.status is BookingStatus.FAILED
    assert stored.failure_reason is FailureReason.HOLD_EXPIRED
    assert stored.refund_required
    assert stored.updated_at == T0 + timedelta(minutes=7)
    assert [b.booking_id for b in refunds] == [110]


async def test_save_of_an_unknown_booking_is_stale(storage: Storage) -> None:
    """Saving a booking that was never added raises StaleBooking."""
    async with storage.uow() as uow:
        with pytest.raises(StaleBooking):
            await uow.bookings.save(make_booking(120), 1)


async def test_a_failed_booking_keeps_its_claims_until_released(storage: Storage) -> None:
    """FAILED keeps the claims; release_claims frees them (idempotently) for a new booking."""
    await add_committed(storage, make_booking(130, seat_ids=[1, 2]))
    async with storage.uow() as uow:
        booking = await uow.bookings.get(130)
        assert booking is not None
        version = booking.version
        booking.fail(FailureReason.THEATER_LOCK_FAILED, T0 + timedelta(seconds=5))
        await uow.bookings.save(booking, version)
        await uow.commit()
    async with storage.uow() as uow:
        with pytest.raises(SeatsAlreadyClaimed):
            await uow.bookings.add(make_booking(131, seat_ids=[2]))
        assert await uow.bookings.live_claims(7, [1, 2]) == {1: 130, 2: 130}
    async with storage.uow() as uow:
        await uow.bookings.release_claims(130)
        await uow.bookings.release_claims(130)
        await uow.commit()
    async with storage.uow() as uow:
        assert await uow.bookings.live_claims(7, [1, 2]) == {}
        await uow.bookings.add(make_booking(131, seat_ids=[2]))
        await uow.commit()
    async with storage.uow() as uow:
        assert await uow.bookings.live_claims(7, [1, 2]) == {2: 131}


async def failed_late_confirmable(storage: Storage, booking_id: int, seat_ids: list[int]) -> None:
    """Store a booking that expired (HOLD_EXPIRED, with a session) and released its claims."""
    booking = make_booking(booking_id, seat_ids=seat_ids)
    await add_committed(storage, booking)
    async with storage.uow() as uow:
        loaded = await uow.bookings.get(booking_id)
        assert loaded is not None
        version = loaded.version
        loaded.attach_payment(session_for(loaded), T0 + timedelta(seconds=1))
        loaded.fail(FailureReason.HOLD_EXPIRED, T0 + timedelta(minutes=6))
        await uow.bookings.save(loaded, version)
        await uow.bookings.release_claims(booking_id)
        await uow.commit()


async def test_a_late_confirmation_claims_the_seats_again(storage: Storage) -> None:
    """A save that makes a FAILED booking live again re-claims its seats."""
    await failed_late_confirmable(storage, 140, [1, 2])
    async with storage.uow() as uow:
        booking = await uow.bookings.get(140)
        assert booking is not None
        version = booking.version
        booking.confirm_late(T0 + timedelta(minutes=8))
        await uow.bookings.save(booking, version)
        await uow.commit()
    async with storage.uow() as uow:
        assert await uow.bookings.live_claims(7, [1, 2]) == {1: 140, 2: 140}
        stored = await uow.bookings.get(140)
        with pytest.raises(SeatsAlreadyClaimed):
            await uow.bookings.add(make_booking(141, seat_ids=[2]))
    assert stored is not None
    assert stored.status is BookingStatus.CONFIRMED


async def test_a_late_confirmation_of_taken_seats_changes_nothing(storage: Storage) -> None:
    """Re-claiming seats another booking took raises SeatsAlreadyClaimed and stores nothing."""
    await failed_late_confirmable(storage, 150, [1, 2, 3])
    await add_committed(storage, make_booking(151, seat_ids=[3, 4]))
    async with storage.uow() as uow:
        booking = await uow.bookings.get(150)
        assert booking is not None
        version = booking.version
        booking.confirm_late(T0 + timedelta(minutes=8))
        with pytest.raises(SeatsAlreadyClaimed) as caught:
            await uow.bookings.save(booking, version)
        assert caught.value.seat_ids == [3]
        # The unit of work goes on: the booking is still FAILED at its version; flag a refund.
        again = await uow.bookings.get(150)
        assert again is not None
        assert again.status is BookingStatus.FAILED
        assert again.version == version
        again.require_refund(T0 + timedelta(minutes=8))
        await uow.bookings.save(again, version)
        await uow.commit()
    async with storage.uow() as uow:
        stored = await uow.bookings.get(150)
        claims = await uow.bookings.live_claims(7, [1, 2, 3, 4])
    assert stored is not None
    assert stored.status is BookingStatus.FAILED
    assert stored.refund_required
    assert claims == {3: 151, 4: 151}


async def test_list_for_user_pages_newest_first_with_a_cursor(storage: Storage) -> None:
    """Listings are newest first (created_at, then id), filtered by status, paged by cursor."""
    # Two bookings share a creation time: the higher id comes first.
    times = [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]
    ids = [200, 201, 202, 203]
    bookings = [
        make_booking(i, seat_ids=[n + 1], now=t)
        for n, (i, t) in enumerate(zip(ids, times, strict=True))
    ]
    other_user = make_booking(204, user_id=2, seat_ids=[9], now=T0 + timedelta(minutes=3))
    await add_committed(storage, *bookings, other_user)
    async with storage.uow() as uow:
        failed = await uow.bookings.get(201)
        assert failed is not None
        version = failed.version
        failed.fail(FailureReason.PAYMENT_FAILED, T0 + timedelta(minutes=4))
        await uow.bookings.save(failed, version)
        await uow.commit()

    async with storage.uow() as uow:
        everything = await uow.bookings.list_for_user(1, status=None, limit=10, after=None)
        first_page = await uow.bookings.list_for_user(1, status=None, limit=2, after=None)
        last = first_page[-1]
        cursor = PageCursor(last.created_at, last.booking_id)
        second_page = await uow.bookings.list_for_user(1, status=None, limit=2, after=cursor)
        end = second_page[-1]
        past_end = await uow.bookings.list_for_user(
            1, status=None, limit=2, after=PageCursor(end.created_at, end.booking_id)
        )
        pending = await uow.bookings.list_for_user(
            1, status=BookingStatus.PENDING, limit=10, after=None
        )
        failed_only = await uow.bookings.list_for_user(
            1, status=BookingStatus.FAILED, limit=10, after=None
        )
        nobody = await uow.bookings.list_for_user(3, status=None, limit=10, after=None)
    assert [b.booking_id for b in everything] == [203, 202, 201, 200]
    assert [b.booking_id for b in first_page] == [203, 202]
    assert [b.booking_id for b in second_page] == [201, 200]
    assert past_end == []
    assert [b.booking_id for b in pending] == [203, 202, 200]
    assert [b.booking_id for b in failed_only] == [201]
    assert nobody == []
    assert everything[3] == bookings[0]


async def test_claim_due_leases_pending_bookings_past_their_hold(storage: Storage) -> None:
    """claim_due answers PENDING bookings due before `before`, oldest hold first, up to limit."""
    due_soon = make_booking(300, seat_ids=[1], now=T0 + timedelta(minutes=1))
    due_first = make_booking(301, seat_ids=[2], now=T0)
    not_due = make_booking(302, seat_ids=[3], now=T0 + timedelta(hours=1))
    finished = make_booking(303, seat_ids=[4], now=T0)
    await add_committed(storage, due_soon, due_first, not_due, finished)
    async with storage.uow() as uow:
        done = await uow.bookings.get(303)
        assert done is not None
        version = done.version
        done.cancel(T0 + timedelta(seconds=1))
        await uow.bookings.save(done, version)
        await uow.commit()

    before = T0 + timedelta(minutes=10)
    now = T0 + timedelta(minutes=7)
    async with storage.uow() as uow:
        one = await uow.bookings.claim_due(before, now, LEASE, 1)
        await uow.commit()
    async with storage.uow() as uow:
        rest = await uow.bookings.claim_due(before, now, LEASE, 10)
        await uow.commit()
    async with storage.uow() as uow:
        again = await uow.bookings.claim_due(before, now + timedelta(seconds=29), LEASE, 10)
        await uow.commit()
    async with storage.uow() as uow:
        after_lease = await uow.bookings.claim_due(before, now + LEASE, LEASE, 10)
        await uow.commit()
    assert [b.booking_id for b in one] == [301]
    assert one[0] == due_first
    assert [b.booking_id for b in rest] == [300]
    assert again == []
    assert [b.booking_id for b in after_lease] == [301, 300]


async def test_an_uncommitted_claim_due_leases_nothing(storage: Storage) -> None:
    """A claim_due whose unit of work rolls back leaves the booking due."""
    await add_committed(storage, make_booking(310, now=T0))
    before, now = T0 + timedelta(minutes=10), T0 + timedelta(minutes=7)
    async with storage.uow() as uow:
        assert len(await uow.bookings.claim_due(before, now, LEASE, 10)) == 1
    async with storage.uow() as uow:
        assert [b.booking_id for b in await uow.bookings.claim_due(before, now, LEASE, 10)] == [310]


async def test_audit_trail_keeps_every_change_in_order(storage: Storage) -> None:
    """Audit entries read back in the order recorded, with every field, per booking."""
    entries = [
        AuditEntry(400, "user:1", T0, None, BookingStatus.PENDING, "created"),
        AuditEntry(
            400,
            "reconciler",
            T0 + timedelta(minutes=6),
            BookingStatus.PENDING,
            BookingStatus.FAILED,
            "HOLD_EXPIRED",
        ),
        AuditEntry(
            400,
            "payment-webhook",
            T0 + timedelta(minutes=7),
            BookingStatus.FAILED,
            BookingStatus.FAILED,
            "paid after expiry; seats taken",
            refund_required=True,
        ),
    ]
    async with storage.uow() as uow:
        await uow.bookings.add(make_booking(400))
        await uow.audit.record(entries[0])
        await uow.audit.record(AuditEntry(401, "user:2", T0, None, BookingStatus.PENDING, None))
        await uow.commit()
    async with storage.uow() as uow:
        for entry in entries[1:]:
            await uow.audit.record(entry)
        await uow.commit()
    async with storage.uow() as uow:
        trail = await uow.audit.trail(400)
        assert await uow.audit.trail(999) == []
    assert trail == entries
    assert all(e.at.tzinfo is not None and e.at.utcoffset() == timedelta(0) for e in trail)
    assert trail[0].at == T0.astimezone(UTC)


async def test_ping_answers_when_the_store_is_up(storage: Storage) -> None:
    """ping returns quietly when the store answers."""
    await storage.uow.ping()
