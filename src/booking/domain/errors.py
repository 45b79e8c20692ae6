"""Domain errors: small classes the HTTP layer maps to problem documents in one place."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    code = "DOMAIN_ERROR"


class InvalidMoney(DomainError):
    code = "INVALID_AMOUNT"


class InvalidBookingRequest(DomainError):
    """The request cannot become a booking (seat count, duplicates, ids)."""

    code = "INVALID_REQUEST"


class IllegalTransition(DomainError):
    """The booking's state machine refuses this move from its current status."""

    code = "ILLEGAL_TRANSITION"

    def __init__(self, booking_id: int, current: str, attempted: str) -> None:
        super().__init__(f"booking {booking_id} is {current}; cannot {attempted}")
        self.booking_id = booking_id
        self.current = current
        self.attempted = attempted


class PaymentMismatch(DomainError):
    """A payment result names another booking, amount or session than the booking's own."""

    code = "PAYMENT_MISMATCH"
