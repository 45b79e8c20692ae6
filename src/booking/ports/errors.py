"""Errors ports raise. Adapters wrap every library error in one of these."""

from __future__ import annotations


class PortError(Exception):
    """Base of every port error."""


class DependencyUnavailable(PortError):
    """A remote part is down, slow or answered with a transient error: ask again later."""

    dependency = "dependency"

    def __init__(self, message: str = "", *, dependency: str | None = None) -> None:
        super().__init__(message or f"{dependency or self.dependency} is unavailable")
        if dependency is not None:
            self.dependency = dependency


class SeatLockUnavailable(DependencyUnavailable):
    dependency = "seat-lock"


class DatabaseUnavailable(DependencyUnavailable):
    dependency = "database"


class TheaterUnavailable(DependencyUnavailable):
    dependency = "theater"


class PaymentUnavailable(DependencyUnavailable):
    dependency = "payment"


class PublishFailed(DependencyUnavailable):
    dependency = "event-broker"


class SeatsUnavailable(PortError):
    """Some of the asked seats are not free; never a subset is booked."""

    def __init__(self, seat_ids: list[int]) -> None:
        super().__init__(f"seats not available: {sorted(seat_ids)}")
        self.seat_ids = sorted(seat_ids)


class SeatsAlreadyClaimed(SeatsUnavailable):
    """The database refused a second live claim on a show-seat (the final arbiter)."""


class ShowNotFound(PortError):
    def __init__(self, show_id: int) -> None:
        super().__init__(f"show {show_id} not found")
        self.show_id = show_id


class TheaterRejected(PortError):
    """The Theater Service refused a seat operation for good (not a transient error)."""


class PaymentRejected(PortError):
    """The Payment Service refused to open a checkout (not a transient error)."""


class StaleBooking(PortError):
    """A conditional update lost: the booking changed since it was read."""

    def __init__(self, booking_id: int) -> None:
        super().__init__(f"booking {booking_id} changed concurrently")
        self.booking_id = booking_id


class DuplicateBookingId(PortError):
    """An id generator collision; the caller draws another id."""
