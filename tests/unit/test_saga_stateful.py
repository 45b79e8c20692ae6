"""Many users interleaving the whole saga on the memory harness, with faults injected."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from booking.adapters.sandbox.theater import SeatStatus
from booking.application.errors import SeatConflict
from booking.application.messages import TOPIC_FAILED, TOPIC_REFUND, TOPIC_SUCCESS
from booking.application.relay import ActionRunner
from booking.domain.booking import Booking, BookingStatus, PaymentStatus
from booking.domain.errors import IllegalTransition
from booking.ports.errors import DependencyUnavailable
from booking.ports.outbox import MessageKind, OutboxMessage
from booking.ports.seat_lock import hold_owner
from tests.support.harness import SHOW_ID, Harness, small_hall

SEATS = [101, 102, 103, 104, 105, 106]
FAULTS = ("payment_create", "theater_lock", "lock_store", "broker", "theater_down")


class CountingActions(ActionRunner):
    """Counts each action that completed, by message."""

    def __init__(self, harness: Harness) -> None:
        super().__init__(
            harness.uow, harness.theater, harness.locks, harness.payment, harness.apply
        )
        self.done: Counter[str] = Counter()

    async def run(self, message: OutboxMessage) -> None:
        await super().run(message)
        self.done[message.message_id] += 1


class SagaMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.h = Harness()
        self.h.theater.add_show(SHOW_ID, small_hall(len(SEATS)))
        self.actions = CountingActions(self.h)
        self.h.relay._actions = self.actions  # the relay under test runs the counting runner
        self.faults: set[str] = set()

    def teardown(self) -> None:
        # Every part back, time past every hold and backoff: the system settles completely.
        for fault in list(self.faults):
            self.toggle(fault)
        for _ in range(3):
            self.h.clock.advance(self.h.settings.hold_ttl + self.h.settings.grace * 2)
            self.run(self.h.reconciler.run_once())
            self.h.clock.advance(self.h.settings.retry_max * 2)
            self.run(self.h.relay.drain())
        assert all(b.status is not BookingStatus.PENDING for b in self.h.bookings())
        self.check_released(only_settled=False)
        self.loop.close()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coro)

    def pick(self, index: int, status: BookingStatus | None = None) -> Booking | None:
        rows = [b for b in self.h.bookings() if status is None or b.status is status]
        return sorted(rows, key=lambda b: b.booking_id)[index % len(rows)] if rows else None

    # -- faults ---------------------------------------------------------------------------
    @rule(fault=st.sampled_from(FAULTS))
    def toggle(self, fault: str) -> None:
        on = fault not in self.faults
        self.faults.symmetric_difference_update({fault})
        match fault:
            case "payment_create":
                self.h.payment.create_fails = on
            case "theater_lock":
                self.h.theater.refuse_lock = on
            case "lock_store":
                self.h.locks.down = on
            case "broker":
                self.h.publisher.down = on
            case "theater_down":
                self.h.theater.down = on

    # -- users ----------------------------------------------------------------------------
    @rule(
        user=st.integers(1, 4),
        seats=st.lists(st.sampled_from(SEATS), min_size=1, max_size=3, unique=True),
    )
    def create(self, user: int, seats: list[int]) -> None:
        try:
            booking = self.run(self.h.create(self.h.user(user), SHOW_ID, seats))
        except SeatConflict:
            return
        except DependencyUnavailable:
            assert self.faults & {"payment_create", "theater_down"}
            return
        assert booking.status is BookingStatus.PENDING
        assert booking.payment is not None

    def settle(self, index: int, status: PaymentStatus, channel: str) -> None:
        booking = self.pick(index, BookingStatus.PENDING)
        if booking is None or booking.payment is None:
            return
        result = self.h.payment.settle(booking.payment.session_id, status)
        if channel == "poll":
            self.run(self.h.verify(self.h.user(booking.user_id), booking.booking_id))
        elif channel == "reconciler":
            self.h.clock.advance(self.h.settings.hold_ttl)
            self.run(self.h.reconciler.run_once())
        else:
            self.run(self.h.apply(result, actor=channel))

    @precondition(lambda self: self.h.bookings())
    @rule(index=st.integers(0, 50), channel=st.sampled_from(["poll", "webhook", "reconciler"]))
    def pay(self, index: int, channel: str) -> None:
        self.settle(index, PaymentStatus.COMPLETED, channel)

    @precondition(lambda self: self.h.bookings())
    @rule(index=st.integers(0, 50), channel=st.sampled_from(["poll", "topic"]))
    def decline(self, index: int, channel: str) -> None:
        self.settle(index, PaymentStatus.FAILED, channel)

    @precondition(lambda self: self.h.bookings())
    @rule(index=st.integers(0, 50))
    def late_payment(self, index: int) -> None:
        booking = self.pick(index, BookingStatus.FAILED)
        if booking is None or booking.payment is None:
            return
        checkout = self.h.payment.checkouts[booking.payment.session_id]
        checkout.status = PaymentStatus.COMPLETED  # the user paid on a checkout still open
        self.run(
            self.h.apply(self.h.payment.settle(checkout.session_id, checkout.status), actor="late")
        )

    @precondition(lambda self: self.h.bookings())
    @rule(index=st.integers(0, 50))
    def cancel(self, index: int) -> None:
        booking = self.pick(index)
        assert booking is not None
        try:
            self.run(self.h.cancel(self.h.user(booking.user_id), booking.booking_id))
        except IllegalTransition:
            assert booking.status is not BookingStatus.PENDING

    # -- time and background work -----------------------------------------------------------
    @rule(seconds=st.sampled_from([1, 30, 200, 400]))
    def expire(self, seconds: int) -> None:
        self.h.clock.advance(timedelta(seconds=seconds))
        self.run(self.h.reconciler.run_once())

    @rule()
    def relay(self) -> None:
        self.h.clock.advance(self.h.settings.retry_max)
        self.run(self.h.relay.drain())

    # -- invariants -----------------------------------------------------------------------
    @invariant()
    def no_seat_in_two_live_bookings(self) -> None:
        owners: dict[int, int] = {}
        for booking in self.h.bookings():
            if booking.status.is_live:
                for seat in booking.seat_ids:
                    assert seat not in owners, (
                        f"seat {seat} in {owners[seat]} and {booking.booking_id}"
                    )
                    owners[seat] = booking.booking_id

    @invariant()
    def one_event_per_outcome(self) -> None:
        events = Counter(
            (r.message.booking_id, r.message.name)
            for r in self.h.db.state.outbox
            if r.message.kind is MessageKind.EVENT
        )
        for b in self.h.bookings():
            success, failed = (
                events[(b.booking_id, TOPIC_SUCCESS)],
                events[(b.booking_id, TOPIC_FAILED)],
            )
            assert events[(b.booking_id, TOPIC_REFUND)] == int(b.refund_required)
            if b.status is BookingStatus.CONFIRMED:
                assert success == 1 and failed <= 1
            elif b.status in (BookingStatus.FAILED, BookingStatus.CANCELLED):
                assert (success, failed) == (0, 1)
            else:
                assert (success, failed) == (0, 0)

    @invariant()
    def compensation_at_most_once_per_step(self) -> None:
        assert all(n == 1 for n in self.actions.done.values())
        steps = Counter(
            (r.message.booking_id, r.message.name)
            for r in self.h.db.state.outbox
            if r.message.kind is MessageKind.ACTION
        )
        assert all(n <= 2 for n in steps.values())  # once when failed, once more if late-confirmed

    @invariant()
    def failed_bookings_hold_nothing_once_settled(self) -> None:
        self.check_released(only_settled=True)

    def check_released(self, *, only_settled: bool) -> None:
        unsent = {r.message.booking_id for r in self.h.db.state.outbox if r.sent_at is None}
        claims = self.h.db.state.claims
        now = self.h.clock.now()
        busy = {
            s
            for b in self.h.bookings()
            if b.status.is_live or b.booking_id in unsent
            for s in b.seat_ids
        }
        for b in self.h.bookings():
            if b.status.is_live or (only_settled and b.booking_id in unsent):
                continue
            for seat in b.seat_ids:
                assert claims.get((SHOW_ID, seat)) != b.booking_id
                # A release the hold store missed is left to the hold's own TTL.
                if not self.h.locks.down and b.created_at + self.h.settings.seat_hold_ttl <= now:
                    holder = self.run(self.h.locks.holders(SHOW_ID, [seat])).get(seat)
                    assert holder != hold_owner(b.booking_id)
                if seat not in busy:
                    assert self.h.theater.status(SHOW_ID, seat) is SeatStatus.AVAILABLE


TestSaga = SagaMachine.TestCase
TestSaga.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
