"""Domain events recorded by the aggregate and announced through the outbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from booking.domain.booking import Booking
    from booking.domain.money import Money


@dataclass(frozen=True, slots=True)
class DomainEvent:
    booking_id: int
    user_id: int
    show_id: int
    total: Money
    occurred_at: datetime
    version: int

    @classmethod
    def of(cls, booking: Booking, now: datetime) -> Self:
        return cls(
            booking_id=booking.booking_id,
            user_id=booking.user_id,
            show_id=booking.show_id,
            total=booking.total,
            occurred_at=now,
            version=booking.version,
        )


@dataclass(frozen=True, slots=True)
class BookingConfirmed(DomainEvent):
    """The booking is paid and CONFIRMED (on the wire: `booking_success`)."""


@dataclass(frozen=True, slots=True)
class BookingFailed(DomainEvent):
    """The booking ended FAILED or CANCELLED (on the wire: `booking_failed`)."""

    reason: str = ""

    @classmethod
    def of(cls, booking: Booking, now: datetime) -> Self:
        base = DomainEvent.of(booking, now)
        reason = booking.failure_reason.value if booking.failure_reason else ""
        return cls(**{f: getattr(base, f) for f in _FIELDS}, reason=reason)


@dataclass(frozen=True, slots=True)
class RefundRequired(DomainEvent):
    """A payment completed for a booking that cannot be honoured."""


_FIELDS = ("booking_id", "user_id", "show_id", "total", "occurred_at", "version")
