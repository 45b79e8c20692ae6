"""OpenAPI examples and error responses of every endpoint (the interactive docs show them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Example,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)

from booking.entrypoints.problems import MEDIA_TYPE, ProblemDocument

SEATS = [
    {"bookingSeatId": 101, "seatId": 101, "seatNumber": "3-7", "seatType": "GOLD", "price": 250.0},
    {"bookingSeatId": 102, "seatId": 102, "seatNumber": "3-8", "seatType": "GOLD", "price": 250.0},
]

BOOKING: dict[str, Any] = {
    "bookingId": 42,
    "userId": 7,
    "showId": 12,
    "totalAmount": 500.0,
    "status": "PENDING",
    "seats": SEATS,
    "paymentSessionId": "cs_test_a1",
    "paymentUrl": "https://checkout.example/pay/cs_test_a1",
    "paymentExpiresAt": 1764018000,
    "holdExpiresAt": "2026-01-01T12:05:00Z",
    "failureReason": None,
    "refundRequired": False,
    "createdAt": "2026-01-01T12:00:00Z",
    "updatedAt": "2026-01-01T12:00:00Z",
}

CREATE_REQUEST = Example(summary="two seats", value={"showId": 12, "seatIds": [101, 102]})
BOOKING_EXAMPLE = Example(summary="a pending booking", value=BOOKING)
CONFIRMED_EXAMPLE = Example(summary="a paid booking", value=BOOKING | {"status": "CONFIRMED"})
CANCELLED_EXAMPLE = Example(
    summary="a cancelled booking",
    value=BOOKING | {"status": "CANCELLED", "failureReason": "CANCELLED_BY_USER"},
)
PAGE_EXAMPLE = Example(
    summary="one page",
    value={"items": [BOOKING], "nextCursor": "WyIyMDI2LTAxLTAxVDEyOjAwOjAwWiIsNDJd"},
)
SEATS_EXAMPLE = Example(
    summary="ticket data",
    value=[{"seatId": 101, "seatNumber": "3-7", "seatType": "GOLD", "price": 250.0}],
)
WEBHOOK_EXAMPLE = Example(
    summary="a completed payment",
    value={"sessionId": "cs_test_a1", "bookingId": 42, "amount": 500.0, "status": "COMPLETED"},
)
WEBHOOK_ACK_EXAMPLE = Example(
    summary="applied", value={"result": "applied", "bookingId": 42, "bookingStatus": "CONFIRMED"}
)


def _problem(status: int, code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": f"urn:bookticket:problem:{code.lower().replace('_', '-')}",
        "title": {
            400: "Bad Request",
            401: "Unauthorized",
            402: "Payment Required",
            403: "Forbidden",
            404: "Not Found",
            409: "Conflict",
            413: "Request Entity Too Large",
            422: "Unprocessable Entity",
            429: "Too Many Requests",
            503: "Service Unavailable",
        }[status],
        "status": status,
        "detail": detail,
        "instance": "/api/v1/bookings/42",
        "timestamp": "2026-01-01T12:00:00.123456Z",
        "errorCode": code,
        **extra,
    }


_PROBLEMS: dict[int, tuple[str, list[Example]]] = {
    400: (
        "Malformed request: unreadable JSON, a bad parameter or path id",
        [
            Example(
                summary="not an id",
                value=_problem(
                    400, "INVALID_BOOKING_ID", "the booking id must be a positive integer"
                ),
            )
        ],
    ),
    401: (
        "No valid identity",
        [
            Example(
                summary="no token",
                value=_problem(401, "UNAUTHENTICATED", "a bearer token is required"),
            )
        ],
    ),
    402: (
        "The payment failed",
        [Example(summary="declined", value=_problem(402, "PAYMENT_FAILED", "the payment failed"))],
    ),
    403: (
        "The caller lacks the role",
        [
            Example(
                summary="no role", value=_problem(403, "FORBIDDEN", "this call needs the role USER")
            )
        ],
    ),
    404: (
        "Unknown booking (or another user's), or an unknown show",
        [
            Example(
                summary="unknown", value=_problem(404, "BOOKING_NOT_FOUND", "booking 42 not found")
            )
        ],
    ),
    409: (
        "Seats taken, an illegal transition, or an idempotency key in use",
        [
            Example(
                summary="seats taken",
                value=_problem(
                    409,
                    "SEAT_LOCK_CONFLICT",
                    "some of the seats are not available; nothing was booked",
                    seatIds=[102],
                ),
            )
        ],
    ),
    413: (
        "The body is too large",
        [
            Example(
                summary="too large",
                value=_problem(413, "PAYLOAD_TOO_LARGE", "the request body is too large"),
            )
        ],
    ),
    422: (
        "The body is not a valid request",
        [
            Example(
                summary="too many seats",
                value=_problem(
                    422,
                    "VALIDATION_FAILED",
                    "the request body is not a valid request",
                    errors=[{"field": "$.seatIds", "reason": "must have at most 10 items"}],
                ),
            )
        ],
    ),
    429: (
        "Too many bookings created by this caller; try again after Retry-After seconds",
        [
            Example(
                summary="over the per-caller create limit",
                value=_problem(
                    429,
                    "TOO_MANY_REQUESTS",
                    "too many bookings created by this caller; try again later",
                ),
            )
        ],
    ),
    503: (
        "A dependency is down; try again after Retry-After seconds",
        [
            Example(
                summary="payment down",
                value=_problem(
                    503,
                    "DEPENDENCY_UNAVAILABLE",
                    "a service this call needs (payment) is unavailable; try again later",
                    dependency="payment",
                ),
            )
        ],
    ),
}


_KEYS = {
    "exclusiveMinimum": "exclusive_minimum",
    "exclusiveMaximum": "exclusive_maximum",
    "minItems": "min_items",
    "maxItems": "max_items",
    "uniqueItems": "unique_items",
    "minLength": "min_length",
    "maxLength": "max_length",
    "additionalProperties": "additional_properties",
}
_PLAIN = ("minimum", "maximum", "required", "title", "description", "examples", "enum", "format")


def openapi_schema(node: dict[str, Any], defs: dict[str, Any] | None = None) -> Schema:
    """msgspec's JSON Schema (which keeps every nested constraint, unlike Litestar's own
    generator) as Litestar's OpenAPI `Schema`."""
    defs = node.get("$defs", defs or {})
    if "$ref" in node:
        return openapi_schema(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    values: dict[str, Any] = {k: node[k] for k in _PLAIN if k in node}
    for key, name in _KEYS.items():
        if key in node:
            value = node[key]
            values[name] = openapi_schema(value, defs) if isinstance(value, dict) else value
    if "type" in node:
        values["type"] = OpenAPIType(node["type"])
    if "properties" in node:
        values["properties"] = {k: openapi_schema(v, defs) for k, v in node["properties"].items()}
    if "items" in node:
        values["items"] = openapi_schema(node["items"], defs)
    return Schema(**values)


def json_body(kind: type[Any], example: Example, description: str) -> RequestBody:
    """A request body documented from the msgspec type the handler decodes itself."""
    return RequestBody(
        required=True,
        description=description,
        content={
            "application/json": OpenAPIMediaType(
                schema=openapi_schema(msgspec.json.schema(kind)),
                examples={example.summary or "example": example},
            )
        },
    )


@dataclass
class PublicOperation(Operation):
    """An operation without the bearer token (health, metrics, the signed webhook)."""

    def __post_init__(self) -> None:
        self.security = []


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """The problem answers of an endpoint, documented with an example each."""
    specs = {}
    for status in statuses:
        description, examples = _PROBLEMS[status]
        specs[status] = ResponseSpec(
            data_container=ProblemDocument,
            description=description,
            media_type=MEDIA_TYPE,
            examples=examples,
            generate_examples=False,
        )
    return specs
