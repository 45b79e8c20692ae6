"""Outbox rows: domain events in the platform's wire format, and after-commit actions.

Events follow the Notification Service's contract: topic `booking_success` / `booking_failed`,
JSON with camelCase fields and rupee amounts, the `__TypeId__` header it requires, keyed by the
booking id. `eventId` is derived from the booking, its version and the event type, so the same
state change always carries the same id.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from booking.domain.booking import Booking
from booking.domain.events import BookingConfirmed, BookingFailed, DomainEvent, RefundRequired
from booking.ports.outbox import JSON, MessageKind, OutboxMessage

SCHEMA_VERSION = 1
_NAMESPACE = uuid.UUID("6f1c2b1e-8d0a-4c55-9a43-1b5f7c3e9d20")
_TYPE_PREFIX = "com.bookticket.booking_service.dto."

TOPIC_SUCCESS = "booking_success"
TOPIC_FAILED = "booking_failed"
TOPIC_REFUND = "booking_refund_required"

_TOPICS: dict[type[DomainEvent], tuple[str, str]] = {
    BookingConfirmed: (TOPIC_SUCCESS, _TYPE_PREFIX + "BookingSuccessEvent"),
    BookingFailed: (TOPIC_FAILED, _TYPE_PREFIX + "BookingFailedEvent"),
    RefundRequired: (TOPIC_REFUND, _TYPE_PREFIX + "BookingRefundRequiredEvent"),
}


class Action(StrEnum):
    THEATER_BOOK = "theater.book"
    THEATER_LOCK_BOOK = "theater.lock_book"
    THEATER_RELEASE = "theater.release"
    HOLD_RELEASE = "hold.release"
    # Expired without a definitive payment answer: ask the payment side until it gives one.
    PAYMENT_RECHECK = "payment.recheck"


def event_id(event: DomainEvent) -> str:
    name = f"{type(event).__name__}:{event.booking_id}:{event.version}"
    return str(uuid.uuid5(_NAMESPACE, name))


def event_message(event: DomainEvent) -> OutboxMessage:
    topic, type_id = _TOPICS[type(event)]
    payload: dict[str, JSON] = {
        "bookingId": event.booking_id,
        "userId": event.user_id,
        "showId": event.show_id,
        "totalAmount": event.total.to_major(),
    }
    if isinstance(event, BookingFailed):
        payload["reason"] = event.reason
    payload |= {
        "eventId": event_id(event),
        "occurredAt": event.occurred_at.isoformat(),
        "schemaVersion": SCHEMA_VERSION,
    }
    return OutboxMessage(
        message_id=event_id(event),
        booking_id=event.booking_id,
        kind=MessageKind.EVENT,
        name=topic,
        payload=payload,
        headers={"__TypeId__": type_id},
        created_at=event.occurred_at,
    )


def action_message(booking: Booking, action: Action, now: datetime) -> OutboxMessage:
    name = f"{action}:{booking.booking_id}:{booking.version}"
    return OutboxMessage(
        message_id=str(uuid.uuid5(_NAMESPACE, name)),
        booking_id=booking.booking_id,
        kind=MessageKind.ACTION,
        name=action.value,
        payload={
            "bookingId": booking.booking_id,
            "userId": booking.user_id,
            "showId": booking.show_id,
            "seatIds": list(booking.seat_ids),
        },
        created_at=now,
    )
