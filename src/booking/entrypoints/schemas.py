"""Wire shapes of the public API (contracts section 5): msgspec Structs, camelCase, rupees."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from booking.application.queries import Page
from booking.domain.booking import MAX_SEATS_PER_BOOKING, Booking, Seat
from booking.ports.repository import PageCursor

MAX_ID = 2**63 - 1

Id = Annotated[int, Meta(gt=0, le=MAX_ID, description="a positive 64-bit id", examples=[12])]
SeatIds = Annotated[
    list[Annotated[int, Meta(gt=0, le=MAX_ID)]],
    Meta(
        min_length=1,
        max_length=MAX_SEATS_PER_BOOKING,
        description="1 to 10 distinct show-seat ids",
        examples=[[101, 102]],
        extra_json_schema={"uniqueItems": True},
    ),
]


class CreateBookingRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """`POST /api/v1/bookings`: hold these show-seats of the show and open a checkout."""

    show_id: Id
    seat_ids: SeatIds


class BookingSeatView(msgspec.Struct, rename="camel"):
    """A seat of a booking. `bookingSeatId` identifies the seat within its booking (a booking
    holds a show-seat once, so it equals the show-seat id)."""

    booking_seat_id: int
    seat_id: int
    seat_number: str
    seat_type: str
    price: float


class BookingView(msgspec.Struct, rename="camel"):
    """A booking as every endpoint answers it: the contract's create response plus the hold
    expiry, failure reason and timestamps. `paymentExpiresAt` is epoch seconds (as the
    Payment Service sends it); the other instants are RFC 3339 UTC."""

    booking_id: int
    user_id: int
    show_id: int
    total_amount: float
    status: str
    seats: list[BookingSeatView]
    payment_session_id: str | None
    payment_url: str | None
    payment_expires_at: int | None
    hold_expires_at: datetime
    failure_reason: str | None
    refund_required: bool
    created_at: datetime
    updated_at: datetime


class SeatView(msgspec.Struct, rename="camel"):
    """`GET /{id}/seats`: the ticket data the Notification Service reads."""

    seat_id: int
    seat_number: str
    seat_type: str
    price: float


class BookingPage(msgspec.Struct, rename="camel"):
    """The caller's bookings, newest first; pass `nextCursor` as `cursor` for the next page."""

    items: list[BookingView]
    next_cursor: str | None


class WebhookPayload(msgspec.Struct, rename="camel", forbid_unknown_fields=False):
    """A payment result pushed by the payment side (amount in rupees)."""

    session_id: Annotated[str, Meta(min_length=1, max_length=255)]
    status: Annotated[str, Meta(min_length=1, max_length=32)]
    booking_id: Annotated[int, Meta(gt=0, le=MAX_ID)] | None = None
    amount: Annotated[float, Meta(ge=0)] | None = None


class WebhookAck(msgspec.Struct, rename="camel"):
    """`applied`: the result was checked against its booking; `ignored`: unknown session."""

    result: str
    booking_id: int | None = None
    booking_status: str | None = None


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def seat_view(seat: Seat) -> SeatView:
    return SeatView(seat.seat_id, seat.seat_number, seat.seat_type.value, seat.price.to_major())


def booking_view(booking: Booking) -> BookingView:
    payment = booking.payment
    expires = payment.expires_at if payment is not None else None
    return BookingView(
        booking_id=booking.booking_id,
        user_id=booking.user_id,
        show_id=booking.show_id,
        total_amount=booking.total.to_major(),
        status=booking.status.value,
        seats=[
            BookingSeatView(
                s.seat_id, s.seat_id, s.seat_number, s.seat_type.value, s.price.to_major()
            )
            for s in booking.seats
        ],
        payment_session_id=payment.session_id if payment else None,
        payment_url=payment.url if payment else None,
        payment_expires_at=int(expires.timestamp()) if expires is not None else None,
        hold_expires_at=_utc(booking.hold_expires_at),
        failure_reason=booking.failure_reason.value if booking.failure_reason else None,
        refund_required=booking.refund_required,
        created_at=_utc(booking.created_at),
        updated_at=_utc(booking.updated_at),
    )


def page_view(page: Page) -> BookingPage:
    cursor = encode_cursor(page.next_cursor) if page.next_cursor else None
    return BookingPage([booking_view(b) for b in page.items], cursor)


class _Cursor(msgspec.Struct, array_like=True):
    created_at: datetime
    booking_id: int


def encode_cursor(cursor: PageCursor) -> str:
    raw = msgspec.json.encode(_Cursor(cursor.created_at, cursor.booking_id))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> PageCursor | None:
    """None when the text is not a cursor this service made."""
    if len(text) > 200:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        found = msgspec.json.decode(raw, type=_Cursor)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        return None
    if found.created_at.tzinfo is None or not 0 < found.booking_id <= MAX_ID:
        return None
    return PageCursor(found.created_at, found.booking_id)
