"""The Booking aggregate under hypothesis' stateful testing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import hypothesis.strategies as st
import pytest
from hypothesis import example, given, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from booking.domain.booking import (
    Booking,
    BookingStatus,
    FailureReason,
    PaymentSession,
    Seat,
    SeatType,
)
from booking.domain.errors import IllegalTransition, InvalidBookingRequest
from booking.domain.events import BookingConfirmed, BookingFailed, RefundRequired
from booking.domain.money import Money

START = datetime(2026, 3, 1, 18, 0, tzinfo=UTC)

seat_lists = st.lists(
    st.tuples(st.integers(1, 10_000), st.sampled_from(SeatType), st.integers(100, 100_000)),
    min_size=1,
    max_size=10,
    unique_by=lambda t: t[0],
)


class BookingMachine(RuleBasedStateMachine):
    """Random sequences of transitions, legal and illegal, against a model of the rules."""

    def __init__(self) -> None:
        super().__init__()
        self.booking: Booking | None = None
        self.now = START
        self.events: list[object] = []
        self.terminal_seen: BookingStatus | None = None

    def tick(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now

    @precondition(lambda self: self.booking is None)
    @rule(seats=seat_lists)
    def open(self, seats: list[tuple[int, SeatType, int]]) -> None:
        self.booking = Booking.open(
            booking_id=1,
            user_id=2,
            show_id=3,
            seats=[Seat(i, f"1-{i}", t, Money(p)) for i, t, p in seats],
            hold_expires_at=self.now + timedelta(minutes=5),
            now=self.now,
        )
        self.expected_total = sum(p for _, _, p in seats)

    def attempt(self, legal: bool, action: object) -> None:
        assert self.booking is not None
        before = (self.booking.status, self.booking.version, self.booking.refund_required)
        if legal:
            action()  # type: ignore[operator]
            assert self.booking.version > before[1] or self.booking.refund_required == before[2]
        else:
            with pytest.raises(IllegalTransition):
                action()  # type: ignore[operator]
            after = (self.booking.status, self.booking.version, self.booking.refund_required)
            assert after == before
        self.events.extend(self.booking.pull_events())

    @precondition(lambda self: self.booking is not None)
    @rule(session=st.sampled_from(["cs_a", "cs_b"]))
    def attach(self, session: str) -> None:
        assert self.booking is not None
        current = self.booking.payment
        legal = self.booking.status is BookingStatus.PENDING and (
            current is None or current.session_id == session
        )
        self.attempt(
            legal,
            lambda: self.booking.attach_payment(  # type: ignore[union-attr]
                PaymentSession(session, "https://pay/x", None), self.tick()
            ),
        )

    @precondition(lambda self: self.booking is not None)
    @rule()
    def confirm(self) -> None:
        assert self.booking is not None
        legal = self.booking.status is BookingStatus.PENDING and self.booking.payment is not None
        self.attempt(legal, lambda: self.booking.confirm(self.tick()))  # type: ignore[union-attr]

    @precondition(lambda self: self.booking is not None)
    @rule(reason=st.sampled_from(FailureReason))
    def fail(self, reason: FailureReason) -> None:
        assert self.booking is not None
        legal = self.booking.status is BookingStatus.PENDING
        self.attempt(legal, lambda: self.booking.fail(reason, self.tick()))  # type: ignore[union-attr]

    @precondition(lambda self: self.booking is not None)
    @rule()
    def cancel(self) -> None:
        assert self.booking is not None
        legal = self.booking.status is BookingStatus.PENDING
        self.attempt(legal, lambda: self.booking.cancel(self.tick()))  # type: ignore[union-attr]

    @precondition(lambda self: self.booking is not None)
    @rule()
    def confirm_late(self) -> None:
        assert self.booking is not None
        legal = self.booking.late_confirmable
        self.attempt(legal, lambda: self.booking.confirm_late(self.tick()))  # type: ignore[union-attr]

    @precondition(lambda self: self.booking is not None)
    @rule()
    def require_refund(self) -> None:
        assert self.booking is not None
        legal = self.booking.status in (BookingStatus.FAILED, BookingStatus.CANCELLED)
        self.attempt(legal, lambda: self.booking.require_refund(self.tick()))  # type: ignore[union-attr]

    @invariant()
    def totals_match_seats(self) -> None:
        if self.booking is not None:
            assert self.booking.total.minor == self.expected_total
            assert self.booking.total.minor == sum(s.price.minor for s in self.booking.seats)

    @invariant()
    def terminal_states_stay_terminal(self) -> None:
        if self.booking is None:
            return
        status = self.booking.status
        if self.terminal_seen is BookingStatus.CONFIRMED:
            assert status is BookingStatus.CONFIRMED
        if self.terminal_seen is BookingStatus.CANCELLED:
            assert status is BookingStatus.CANCELLED
        if self.terminal_seen is BookingStatus.FAILED:
            # Only verified late payment evidence leaves FAILED, and only for a lapsed hold.
            assert status is BookingStatus.FAILED or (
                status is BookingStatus.CONFIRMED and self.booking.payment is not None
            )
        if status is not BookingStatus.PENDING:
            self.terminal_seen = status

    @invariant()
    def one_event_per_state_change(self) -> None:
        if self.booking is None:
            return
        confirmed = sum(isinstance(e, BookingConfirmed) for e in self.events)
        failed = sum(isinstance(e, BookingFailed) for e in self.events)
        refunds = sum(isinstance(e, RefundRequired) for e in self.events)
        assert confirmed <= 1 and refunds <= 1 and failed <= 1
        if self.booking.status is BookingStatus.CONFIRMED:
            assert confirmed == 1
        if self.booking.status in (BookingStatus.FAILED, BookingStatus.CANCELLED):
            assert failed == 1
        assert refunds == int(self.booking.refund_required)

    @invariant()
    def timestamps_are_aware_and_ordered(self) -> None:
        if self.booking is not None:
            assert self.booking.updated_at.tzinfo is not None
            assert self.booking.created_at <= self.booking.updated_at


TestBookingMachine = BookingMachine.TestCase
TestBookingMachine.settings = settings(max_examples=300, stateful_step_count=30, deadline=None)


def test_naive_timestamps_are_refused() -> None:
    """Timezone-naive times never enter the aggregate."""
    with pytest.raises(InvalidBookingRequest):
        Booking.open(
            booking_id=1,
            user_id=1,
            show_id=1,
            seats=[Seat(1, "1-1", SeatType.GOLD, Money(100))],
            hold_expires_at=datetime(2026, 1, 1, 12, 5),
            now=datetime(2026, 1, 1, 12, 0),
        )


@given(st.integers(min_value=0, max_value=2**53) | st.integers(min_value=2**53, max_value=10**20))
@example(42_845_033_450_597_715_259)  # above 2**53: rounding to float first would be off
def test_money_to_the_wire_is_the_double_nearest_the_exact_amount(minor: int) -> None:
    assert Money(minor).to_major() == float(Decimal(minor) / 100)


@given(
    st.integers(min_value=0, max_value=2**53).map(float)
    | st.floats(min_value=0, max_value=1e16, allow_nan=False)
    | st.sampled_from([0.0, -0.0, 250.0, 0.5, 2.0**53, 2.0**53 + 2])
)
def test_money_from_whole_rupees_is_what_the_decimal_rule_gives(value: float) -> None:
    """Whole rupee floats skip the Decimal: the same paise as the exact half-up rule."""
    exact = (Decimal(str(value)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    assert Money.from_major(value) == Money(int(exact))


@pytest.mark.parametrize("value", [250.0, 0.1, 199.99, "12.345", 1e-9, 0])
def test_money_round_trips_through_the_wire(value: float | str) -> None:
    """Rupee floats become exact paise and back."""
    money = Money.from_major(value)
    assert Money.from_major(money.to_major()) == money
