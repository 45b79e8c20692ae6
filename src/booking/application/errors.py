"""Errors the use cases raise for the entrypoints to map."""

from __future__ import annotations


class ApplicationError(Exception):
    code = "APPLICATION_ERROR"


class BookingNotFound(ApplicationError):
    """Unknown booking, or one the caller may not see (the two are not told apart)."""

    code = "BOOKING_NOT_FOUND"

    def __init__(self, booking_id: int) -> None:
        super().__init__(f"booking {booking_id} not found")
        self.booking_id = booking_id


class SeatConflict(ApplicationError):
    code = "SEAT_LOCK_CONFLICT"

    def __init__(
        self, seat_ids: list[int] | tuple[int, ...], *, failed_booking_id: int | None = None
    ) -> None:
        self.seat_ids = sorted(seat_ids)
        # The booking recorded FAILED on the way (its compensation queued); None when the
        # conflict was found before anything was written.
        self.failed_booking_id = failed_booking_id
        super().__init__(f"seats not available: {self.seat_ids}")


class SessionMismatch(ApplicationError):
    code = "PAYMENT_SESSION_MISMATCH"


class Forbidden(ApplicationError):
    code = "FORBIDDEN"
