"""The saga's use cases on the memory harness, one behaviour at a time."""

from __future__ import annotations

from datetime import timedelta

import pytest

from booking.adapters.sandbox.theater import SeatStatus
from booking.application.errors import BookingNotFound, SeatConflict, SessionMismatch
from booking.application.messages import TOPIC_FAILED, TOPIC_REFUND, TOPIC_SUCCESS
from booking.domain.booking import (
    BookingStatus,
    FailureReason,
    PaymentResult,
    PaymentStatus,
)
from booking.domain.errors import IllegalTransition, InvalidBookingRequest, PaymentMismatch
from booking.domain.identity import Principal
from booking.domain.money import Money
from booking.ports.errors import DependencyUnavailable, ShowNotFound
from booking.ports.outbox import MessageKind
from booking.ports.seat_lock import hold_owner
from tests.support.harness import SHOW_ID, Harness, small_hall


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    harness.theater.add_show(SHOW_ID, small_hall(6))
    return harness


def topics(h: Harness, booking_id: int) -> list[str]:
    return [m.name for m in h.publisher.published if m.booking_id == booking_id]


async def pay(h: Harness, booking_id: int, status: PaymentStatus = PaymentStatus.COMPLETED):
    booking = h.booking(booking_id)
    assert booking.payment is not None
    result = h.payment.settle(booking.payment.session_id, status)
    return await h.apply(result, booking_id=booking_id, actor="test")


async def test_create_holds_claims_locks_and_opens_one_checkout(h: Harness) -> None:
    """A created booking is PENDING with its session stored, seats held, claimed and locked."""
    booking = await h.create(h.user(1), SHOW_ID, [101, 102])
    assert booking.status is BookingStatus.PENDING
    assert booking.total == Money(250_00 + 250_00 + 100)
    assert booking.payment is not None
    assert h.booking(booking.booking_id).payment == booking.payment
    assert h.payment.creates == 1
    assert await h.locks.holders(SHOW_ID, [101, 102]) == {
        101: hold_owner(booking.booking_id),
        102: hold_owner(booking.booking_id),
    }
    async with h.uow() as tx:
        assert await tx.bookings.live_claims(SHOW_ID, [101, 102]) == {
            101: booking.booking_id,
            102: booking.booking_id,
        }
    assert h.theater.status(SHOW_ID, 101) is SeatStatus.LOCKED


async def test_pay_confirms_books_at_theater_and_announces_once(h: Harness) -> None:
    """COMPLETED confirms; the relay books the seats and publishes exactly one success event."""
    booking = await h.create(h.user(1), SHOW_ID, [101])
    confirmed = await pay(h, booking.booking_id)
    assert confirmed.status is BookingStatus.CONFIRMED
    await pay(h, booking.booking_id)  # the same result again changes nothing
    await h.relay.drain()
    assert h.theater.status(SHOW_ID, 101) is SeatStatus.BOOKED
    assert topics(h, booking.booking_id) == [TOPIC_SUCCESS]
    event = h.publisher.published[0]
    assert event.headers["__TypeId__"].endswith("BookingSuccessEvent")
    assert event.payload["totalAmount"] == 250.0
    assert event.payload["eventId"] == event.message_id


async def test_decline_fails_and_releases_everything(h: Harness) -> None:
    """A definitive FAILED fails the booking and, once relayed, frees hold, claim and Theater."""
    booking = await h.create(h.user(1), SHOW_ID, [101, 102])
    failed = await pay(h, booking.booking_id, PaymentStatus.FAILED)
    assert failed.status is BookingStatus.FAILED
    assert failed.failure_reason is FailureReason.PAYMENT_FAILED
    await h.relay.drain()
    assert topics(h, booking.booking_id) == [TOPIC_FAILED]
    assert await h.locks.holders(SHOW_ID, [101, 102]) == {}
    async with h.uow() as tx:
        assert await tx.bookings.live_claims(SHOW_ID, [101, 102]) == {}
    assert h.theater.status(SHOW_ID, 101) is SeatStatus.AVAILABLE
    again = await h.create(h.user(2), SHOW_ID, [101, 102])
    assert again.status is BookingStatus.PENDING


async def test_taken_seat_is_a_conflict_naming_it(h: Harness) -> None:
    """A held seat is refused with its id; nothing of the loser is left behind."""
    await h.create(h.user(1), SHOW_ID, [101, 102])
    with pytest.raises(SeatConflict) as caught:
        await h.create(h.user(2), SHOW_ID, [103, 102])
    assert caught.value.seat_ids == [102]
    assert caught.value.failed_booking_id is None  # nothing written, nothing to compensate
    assert len(h.bookings()) == 1
    assert await h.locks.holders(SHOW_ID, [103]) == {}


async def test_database_claim_is_the_arbiter_when_holds_are_lost(h: Harness) -> None:
    """With the hold store down, the live claim still refuses a second booking of a seat."""
    h.locks.down = True
    first = await h.create(h.user(1), SHOW_ID, [101])
    assert first.status is BookingStatus.PENDING
    with pytest.raises(SeatConflict):
        await h.create(h.user(2), SHOW_ID, [101])


async def test_unknown_show_and_bad_seat_lists_are_refused(h: Harness) -> None:
    """Validation happens before any side effect."""
    with pytest.raises(ShowNotFound):
        await h.create(h.user(1), 999, [1])
    for seats in ([], [101, 101], list(range(101, 112)), [0], [-3]):
        with pytest.raises(InvalidBookingRequest):
            await h.create(h.user(1), SHOW_ID, seats)
    assert h.bookings() == []


async def test_payment_init_failure_commits_failed_and_compensates(h: Harness) -> None:
    """A refused checkout leaves a committed FAILED booking and releases the Theater lock."""
    h.payment.create_fails = True
    with pytest.raises(DependencyUnavailable):
        await h.create(h.user(1), SHOW_ID, [101])
    [booking] = h.bookings()
    assert booking.status is BookingStatus.FAILED
    assert booking.failure_reason is FailureReason.PAYMENT_INIT_FAILED
    await h.relay.drain()
    assert h.theater.status(SHOW_ID, 101) is SeatStatus.AVAILABLE
    assert topics(h, booking.booking_id) == [TOPIC_FAILED]
    assert [c[0] for c in h.theater.calls] == ["lock", "release"]


async def test_theater_lock_refused_does_not_release_others_lock(h: Harness) -> None:
    """A refused Theater lock is a conflict; seats we never locked are not released."""
    h.theater.refuse_lock = True
    with pytest.raises(SeatConflict) as caught:
        await h.create(h.user(1), SHOW_ID, [101])
    await h.relay.drain()
    assert [c[0] for c in h.theater.calls] == ["lock"]
    [booking] = h.bookings()
    assert caught.value.failed_booking_id == booking.booking_id
    assert booking.failure_reason is FailureReason.SEATS_UNAVAILABLE
    async with h.uow() as tx:
        assert await tx.bookings.live_claims(SHOW_ID, [101]) == {}


async def test_payment_result_for_another_booking_changes_nothing(h: Harness) -> None:
    """Session, booking id and amount are checked (invariant 5)."""
    a = await h.create(h.user(1), SHOW_ID, [101])
    b = await h.create(h.user(2), SHOW_ID, [102])
    assert a.payment is not None and b.payment is not None
    forged = [
        PaymentResult(b.payment.session_id, PaymentStatus.COMPLETED, a.booking_id, a.total),
        PaymentResult(a.payment.session_id, PaymentStatus.COMPLETED, b.booking_id, a.total),
        PaymentResult(a.payment.session_id, PaymentStatus.COMPLETED, a.booking_id, Money(1)),
    ]
    for result in forged:
        with pytest.raises(PaymentMismatch):
            await h.apply(result, booking_id=a.booking_id, actor="test")
    assert h.booking(a.booking_id).status is BookingStatus.PENDING


async def test_verify_payment_polls_once_and_checks_the_session(h: Harness) -> None:
    """The poll applies the payment side's answer; a foreign session id is refused."""
    booking = await h.create(h.user(1), SHOW_ID, [101])
    assert booking.payment is not None
    with pytest.raises(SessionMismatch):
        await h.verify(h.user(1), booking.booking_id, "cs_other")
    with pytest.raises(BookingNotFound):
        await h.verify(h.user(2), booking.booking_id)
    assert (await h.verify(h.user(1), booking.booking_id)).status is BookingStatus.PENDING
    h.payment.settle(booking.payment.session_id, PaymentStatus.COMPLETED)
    polled = await h.verify(h.user(1), booking.booking_id, booking.payment.session_id)
    assert polled.status is BookingStatus.CONFIRMED


async def test_cancel_only_by_owner_and_only_pending(h: Harness) -> None:
    """The owner cancels a PENDING booking; others see 404; a second cancel is illegal."""
    booking = await h.create(h.user(1), SHOW_ID, [101])
    with pytest.raises(BookingNotFound):
        await h.cancel(h.user(2), booking.booking_id)
    cancelled = await h.cancel(h.user(1), booking.booking_id)
    assert cancelled.status is BookingStatus.CANCELLED
    with pytest.raises(IllegalTransition):
        await h.cancel(h.user(1), booking.booking_id)
    await h.relay.drain()
    assert h.theater.status(SHOW_ID, 101) is SeatStatus.AVAILABLE
    assert topics(h, booking.booking_id) == [TOPIC_FAILED]


async def test_reconciler_expires_unpaid_bookings_after_asking_payment(h: Harness) -> None:
    """Past its hold and not paid: FAILED HOLD_EXPIRED; paid ones confirm instead."""
    unpaid = await h.create(h.user(1), SHOW_ID, [101])
    paid = await h.create(h.user(2), SHOW_ID, [102])
    assert paid.payment is not None
    h.payment.settle(paid.payment.session_id, PaymentStatus.COMPLETED)
    report = await h.reconciler.run_once()
    assert report.checked == 0
    h.clock.advance(h.settings.hold_ttl + timedelta(seconds=1))
    report = await h.reconciler.run_once()
    assert report.actions == {"expired": 1, "paid": 1}
    assert h.booking(unpaid.booking_id).failure_reason is FailureReason.HOLD_EXPIRED
    assert h.booking(paid.booking_id).status is BookingStatus.CONFIRMED


async def test_reconciler_waits_for_silent_payment_side_until_grace(h: Harness) -> None:
    """An unanswerable payment check keeps a booking PENDING only until hold + grace."""
    booking = await h.create(h.user(1), SHOW_ID, [101])
    h.payment.down = True
    h.clock.advance(h.settings.hold_ttl + timedelta(seconds=1))
    assert (await h.reconciler.run_once()).actions == {"waiting_for_payment_side": 1}
    h.clock.advance(h.settings.reconcile_lease)
    assert (await h.reconciler.run_once()).actions == {"waiting_for_payment_side": 1}
    h.clock.advance(h.settings.grace)
    assert (await h.reconciler.run_once()).actions == {"expired": 1}
    assert h.booking(booking.booking_id).status is BookingStatus.FAILED


async def test_late_payment_reconfirms_when_seats_are_free(h: Harness) -> None:
    """A payment after expiry re-claims free seats and confirms; Theater ends BOOKED."""
    booking = await h.create(h.user(1), SHOW_ID, [101])
    h.clock.advance(h.settings.hold_ttl + timedelta(seconds=1))
    await h.reconciler.run_once()
    await h.relay.drain()
    late = await pay(h, booking.booking_id)
    assert late.status is BookingStatus.CONFIRMED
    await h.relay.drain()
    assert h.theater.status(SHOW_ID, 101) is SeatStatus.BOOKED
    assert topics(h, booking.booking_id) == [TOPIC_FAILED, TOPIC_SUCCESS]


async def test_late_payment_for_resold_seats_is_flagged_for_refund(h: Harness) -> None:
    """A payment after the seats went to someone else is flagged, audited and announced."""
    booking = await h.create(h.user(1), SHOW_ID, [101])
    h.clock.advance(h.settings.hold_ttl + timedelta(seconds=1))
    await h.reconciler.run_once()
    await h.relay.drain()
    other = await h.create(h.user(2), SHOW_ID, [101])
    late = await pay(h, booking.booking_id)
    assert late.status is BookingStatus.FAILED
    assert late.refund_required
    await h.relay.drain()
    assert topics(h, booking.booking_id) == [TOPIC_FAILED, TOPIC_REFUND]
    assert h.booking(other.booking_id).status is BookingStatus.PENDING
    async with h.uow() as tx:
        trail = await tx.audit.trail(booking.booking_id)
        assert trail[-1].refund_required
        assert await tx.bookings.refunds_required(10) == [h.booking(booking.booking_id)]


async def test_relay_keeps_events_while_broker_is_down(h: Harness) -> None:
    """No event is lost while the broker is away, none doubled when it returns."""
    booking = await h.create(h.user(1), SHOW_ID, [101])
    await pay(h, booking.booking_id)
    h.publisher.down = True
    await h.relay.drain()
    assert h.publisher.published == []
    assert h.theater.status(SHOW_ID, 101) is SeatStatus.BOOKED  # actions do not wait for Kafka
    h.publisher.down = False
    await h.relay.drain()
    assert h.publisher.published == []  # still backing off
    h.clock.advance(timedelta(seconds=10))
    await h.relay.drain()
    assert topics(h, booking.booking_id) == [TOPIC_SUCCESS]
    stats = await h.store.stats()
    assert stats.pending == 0


async def test_outbox_rows_follow_each_state_change_in_order(h: Harness) -> None:
    """Event first, then the actions, each with a stable id."""
    booking = await h.create(h.user(1), SHOW_ID, [101])
    await pay(h, booking.booking_id, PaymentStatus.FAILED)
    rows = list(reversed(await h.store.recent(10)))
    assert [(r.kind, r.name) for r in rows] == [
        (MessageKind.EVENT, TOPIC_FAILED),
        (MessageKind.ACTION, "theater.release"),
        (MessageKind.ACTION, "hold.release"),
    ]
    assert len({r.message_id for r in rows}) == 3


async def test_service_account_reads_seats_of_any_booking(h: Harness) -> None:
    """The Notification Service's callback may read seats; other users may not."""
    booking = await h.create(h.user(1), SHOW_ID, [101, 102])
    service = Principal.of(1, "1_null", ["ROLE_SERVICE_ACCOUNT"])
    assert [s.seat_id for s in await h.queries.seats(service, booking.booking_id)] == [101, 102]
    with pytest.raises(BookingNotFound):
        await h.queries.seats(h.user(2), booking.booking_id)


async def test_list_own_pages_newest_first(h: Harness) -> None:
    """Listing is the caller's own bookings, newest first, with a cursor."""
    ids = []
    for seat in (101, 102, 103):
        ids.append((await h.create(h.user(1), SHOW_ID, [seat])).booking_id)
        h.clock.advance(timedelta(seconds=1))
    await h.create(h.user(2), SHOW_ID, [104])
    page = await h.queries.list_own(h.user(1), limit=2)
    assert [b.booking_id for b in page.items] == [ids[2], ids[1]]
    rest = await h.queries.list_own(h.user(1), limit=2, after=page.next_cursor)
    assert [b.booking_id for b in rest.items] == [ids[0]]
    assert rest.next_cursor is None


async def test_a_colliding_booking_id_is_drawn_again(h: Harness) -> None:
    """Two replicas drawing one id: the loser gives its hold back and books under a new id."""

    class Repeating:
        def __init__(self) -> None:
            self.ids = iter([5, 5, 6])

        def next_id(self) -> int:
            return next(self.ids)

    h.create._ids = Repeating()
    first = await h.create(h.user(1), SHOW_ID, [101])
    second = await h.create(h.user(2), SHOW_ID, [102])
    assert (first.booking_id, second.booking_id) == (5, 6)
    assert await h.locks.holders(SHOW_ID, [102]) == {102: hold_owner(6)}


def test_snowflake_ids_are_unique_increasing_and_safe_in_javascript() -> None:
    """Ids fit 53 bits (exact in a JSON number for JS clients) and never repeat in a process."""
    from booking.adapters.system import SnowflakeIds

    ids = SnowflakeIds()
    drawn = [ids.next_id() for _ in range(20_000)]
    assert drawn == sorted(drawn)
    assert len(set(drawn)) == len(drawn)
    assert all(0 < i < 2**53 for i in drawn)


async def test_paid_checkout_whose_opening_timed_out_is_not_lost(h: Harness) -> None:
    """A checkout opened just before a timeout is never opened twice; if it is paid anyway,
    the pushed result adopts it by booking id and amount, and the booking is honoured."""
    from booking.ports.errors import PaymentUnavailable

    real_create = h.payment.create_checkout

    async def opens_then_times_out(booking_id, amount, caller):
        await real_create(booking_id, amount, caller)
        raise PaymentUnavailable("read timeout")

    h.payment.create_checkout = opens_then_times_out  # type: ignore[method-assign]
    with pytest.raises(DependencyUnavailable):
        await h.create(h.user(1), SHOW_ID, [101])
    [booking] = h.bookings()
    assert booking.failure_reason is FailureReason.PAYMENT_INIT_FAILED
    assert h.payment.creates == 1
    await h.relay.drain()
    [checkout] = h.payment.checkouts.values()
    stray = h.payment.settle(checkout.session_id, PaymentStatus.COMPLETED)
    late = await h.apply(stray, actor="webhook")
    assert late.status is BookingStatus.CONFIRMED
    assert late.payment is not None
    assert late.payment.session_id == checkout.session_id
    forged = PaymentResult("cs_forged", PaymentStatus.COMPLETED, booking.booking_id, Money(1))
    with pytest.raises(BookingNotFound):
        await h.apply(forged, actor="webhook")


async def test_a_held_seat_is_refused_by_the_hold_alone(h: Harness) -> None:
    """A taken seat costs one hold-store round trip: neither Theater nor database is asked."""
    await h.create(h.user(1), SHOW_ID, [101])
    commits = h.db.commits
    h.theater.down = True
    with pytest.raises(SeatConflict) as caught:
        await h.create(h.user(2), SHOW_ID, [101, 102])
    assert caught.value.seat_ids == [101]
    assert h.db.commits == commits
