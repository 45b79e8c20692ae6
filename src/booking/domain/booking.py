"""The Booking aggregate and its state machine.

PENDING is the only state with outgoing ordinary transitions. CONFIRMED and CANCELLED are
terminal. FAILED is terminal for every ordinary path; the one exception is verified payment
evidence that arrives late (the late-payment policy), which may re-confirm a booking whose hold
expired, or else flags it for refund. Every transition bumps the version and records events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from booking.domain.errors import IllegalTransition, InvalidBookingRequest, PaymentMismatch
from booking.domain.events import (
    BookingConfirmed,
    BookingFailed,
    DomainEvent,
    RefundRequired,
)
from booking.domain.money import Money, total

MAX_SEATS_PER_BOOKING = 10


class BookingStatus(StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_live(self) -> bool:
        """A live booking claims its seats: no other live booking may hold them."""
        return self in (BookingStatus.PENDING, BookingStatus.CONFIRMED)


class FailureReason(StrEnum):
    SEATS_UNAVAILABLE = "SEATS_UNAVAILABLE"
    THEATER_LOCK_FAILED = "THEATER_LOCK_FAILED"
    PAYMENT_INIT_FAILED = "PAYMENT_INIT_FAILED"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    HOLD_EXPIRED = "HOLD_EXPIRED"
    CANCELLED_BY_USER = "CANCELLED_BY_USER"


# Failures after which a payment that still completes may re-confirm the booking.
LATE_CONFIRMABLE = frozenset(
    {FailureReason.HOLD_EXPIRED, FailureReason.PAYMENT_FAILED, FailureReason.PAYMENT_INIT_FAILED}
)


class SeatType(StrEnum):
    SILVER = "SILVER"
    GOLD = "GOLD"
    PLATINUM = "PLATINUM"


class PaymentStatus(StrEnum):
    """What the payment side says of a checkout. UNKNOWN: no definitive answer (ask again)."""

    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True, slots=True)
class Seat:
    """One show-seat of a booking, priced at the time of booking."""

    seat_id: int
    seat_number: str
    seat_type: SeatType
    price: Money


@dataclass(frozen=True, slots=True)
class PaymentSession:
    session_id: str
    url: str
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """A payment outcome from any channel (poll, webhook, topic, reconciler)."""

    session_id: str
    status: PaymentStatus
    booking_id: int | None
    amount: Money | None


def validate_seat_ids(seat_ids: list[int]) -> list[int]:
    """1 to MAX distinct positive integer show-seat ids, order kept."""
    if not seat_ids:
        raise InvalidBookingRequest("seatIds must name at least one seat")
    if len(seat_ids) > MAX_SEATS_PER_BOOKING:
        raise InvalidBookingRequest(f"at most {MAX_SEATS_PER_BOOKING} seats per booking")
    for seat_id in seat_ids:
        if isinstance(seat_id, bool) or not isinstance(seat_id, int) or seat_id <= 0:
            raise InvalidBookingRequest("seat ids are positive integers")
    if len(set(seat_ids)) != len(seat_ids):
        raise InvalidBookingRequest("seatIds must not repeat a seat")
    return list(seat_ids)


@dataclass(slots=True)
class Booking:
    booking_id: int
    user_id: int
    show_id: int
    seats: tuple[Seat, ...]
    total: Money
    status: BookingStatus
    hold_expires_at: datetime
    created_at: datetime
    updated_at: datetime
    failure_reason: FailureReason | None = None
    payment: PaymentSession | None = None
    refund_required: bool = False
    version: int = 1
    events: list[DomainEvent] = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def open(
        cls,
        *,
        booking_id: int,
        user_id: int,
        show_id: int,
        seats: list[Seat],
        hold_expires_at: datetime,
        now: datetime,
    ) -> Booking:
        """A new PENDING booking holding these seats until hold_expires_at."""
        _require_aware(now, hold_expires_at)
        validate_seat_ids([s.seat_id for s in seats])
        if hold_expires_at <= now:
            raise InvalidBookingRequest("a hold must expire in the future")
        return cls(
            booking_id=booking_id,
            user_id=user_id,
            show_id=show_id,
            seats=tuple(seats),
            total=total([s.price for s in seats]),
            status=BookingStatus.PENDING,
            hold_expires_at=hold_expires_at,
            created_at=now,
            updated_at=now,
        )

    @property
    def seat_ids(self) -> list[int]:
        return [s.seat_id for s in self.seats]

    @property
    def is_terminal(self) -> bool:
        return self.status is not BookingStatus.PENDING

    def pull_events(self) -> list[DomainEvent]:
        events, self.events = self.events, []
        return events

    def attach_payment(self, session: PaymentSession, now: datetime) -> None:
        """Remember the one checkout of this booking; a second, different one is refused."""
        self._require(BookingStatus.PENDING, "attach a payment session")
        if self.payment is not None and self.payment.session_id != session.session_id:
            raise IllegalTransition(self.booking_id, "PENDING with a session", "open a second")
        if self.payment == session:
            return
        self.payment = session
        self.version += 1
        self._touch(now)

    def adopt_checkout(self, result: PaymentResult, now: datetime) -> None:
        """A paid checkout whose opening timed out before its session was stored.

        Only a booking without a session adopts one, and only for a completed payment that
        names this booking and its exact amount; the session is then the booking's own."""
        if self.payment is not None:
            raise PaymentMismatch(f"booking {self.booking_id} already has a checkout")
        if (
            result.status is not PaymentStatus.COMPLETED
            or result.booking_id != self.booking_id
            or result.amount != self.total
        ):
            raise PaymentMismatch(f"result does not prove payment of booking {self.booking_id}")
        self.payment = PaymentSession(result.session_id, "", None)
        self.version += 1
        self._touch(now)

    def check_payment(self, result: PaymentResult) -> None:
        """Refuse a result that belongs to another session, booking or amount (invariant 5)."""
        if self.payment is None or result.session_id != self.payment.session_id:
            raise PaymentMismatch(f"session does not belong to booking {self.booking_id}")
        if result.booking_id is not None and result.booking_id != self.booking_id:
            raise PaymentMismatch(f"payment names booking {result.booking_id}")
        if result.status is PaymentStatus.COMPLETED and result.amount != self.total:
            raise PaymentMismatch(f"payment amount differs from booking {self.booking_id}")

    def confirm(self, now: datetime) -> None:
        self._require(BookingStatus.PENDING, "confirm")
        if self.payment is None:
            raise IllegalTransition(self.booking_id, "PENDING without payment", "confirm")
        self._move(BookingStatus.CONFIRMED, None, now)
        self.events.append(BookingConfirmed.of(self, now))

    def fail(self, reason: FailureReason, now: datetime) -> None:
        self._require(BookingStatus.PENDING, f"fail ({reason})")
        self._move(BookingStatus.FAILED, reason, now)
        self.events.append(BookingFailed.of(self, now))

    def cancel(self, now: datetime) -> None:
        self._require(BookingStatus.PENDING, "cancel")
        self._move(BookingStatus.CANCELLED, FailureReason.CANCELLED_BY_USER, now)
        self.events.append(BookingFailed.of(self, now))

    @property
    def late_confirmable(self) -> bool:
        return (
            self.status is BookingStatus.FAILED
            and self.failure_reason in LATE_CONFIRMABLE
            and not self.refund_required
            and self.payment is not None
        )

    def confirm_late(self, now: datetime) -> None:
        """A verified late payment whose seats could be re-claimed: FAILED → CONFIRMED."""
        if not self.late_confirmable:
            raise IllegalTransition(self.booking_id, self.status, "confirm a late payment")
        self._move(BookingStatus.CONFIRMED, None, now)
        self.events.append(BookingConfirmed.of(self, now))

    def require_refund(self, now: datetime) -> None:
        """A verified payment for a booking that cannot be honoured: flag it, durably, once."""
        if self.status not in (BookingStatus.FAILED, BookingStatus.CANCELLED):
            raise IllegalTransition(self.booking_id, self.status, "flag for refund")
        if self.refund_required:
            return
        self.refund_required = True
        self.version += 1
        self._touch(now)
        self.events.append(RefundRequired.of(self, now))

    def _require(self, expected: BookingStatus, attempted: str) -> None:
        if self.status is not expected:
            raise IllegalTransition(self.booking_id, self.status, attempted)

    def _move(self, status: BookingStatus, reason: FailureReason | None, now: datetime) -> None:
        self.status = status
        self.failure_reason = reason
        self.version += 1
        self._touch(now)

    def _touch(self, now: datetime) -> None:
        _require_aware(now)
        self.updated_at = max(self.updated_at, now)


def _require_aware(*moments: datetime) -> None:
    for moment in moments:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise InvalidBookingRequest("timestamps must be timezone-aware")
