"""RFC 9457 problem documents: the one place where every error becomes an HTTP answer."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from booking.application.errors import (
    BookingNotFound,
    SeatConflict,
    SessionMismatch,
)
from booking.application.errors import Forbidden as ApplicationForbidden
from booking.domain.errors import IllegalTransition, InvalidBookingRequest, PaymentMismatch
from booking.entrypoints.identity import Forbidden, Unauthenticated
from booking.entrypoints.webhook import WebhookRefused
from booking.ports.errors import (
    DependencyUnavailable,
    DuplicateBookingId,
    PaymentRejected,
    SeatsUnavailable,
    ShowNotFound,
    StaleBooking,
    TheaterRejected,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "urn:bookticket:problem:"
DEFAULT_RETRY_AFTER = 5


class FieldError(msgspec.Struct, rename="camel"):
    """One invalid input: where (`$.seatIds[0]`, a parameter name) and why, in our words."""

    field: str
    reason: str


class ProblemDocument(msgspec.Struct, rename="camel", omit_defaults=True):
    """RFC 9457 with the platform's extra members `timestamp` and `errorCode`."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    timestamp: str
    error_code: str
    seat_ids: list[int] | None = None
    errors: list[FieldError] | None = None
    current_status: str | None = None
    dependency: str | None = None


class ApiError(Exception):
    """An error the HTTP edge itself decides (bad path id, bad cursor, idempotency rules)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


@dataclass(slots=True)
class Problem:
    status: int
    code: str
    detail: str
    title: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    def document(self, instance: str, now: datetime | None = None) -> ProblemDocument:
        moment = (now or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
        slug = self.code.lower().replace("_", "-")
        return ProblemDocument(
            type=f"{TYPE_BASE}{slug}",
            title=self.title or _phrase(self.status),
            status=self.status,
            detail=self.detail,
            instance=instance,
            timestamp=moment,
            error_code=self.code,
            **self.extras,
        )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


# --- validation messages in our own words -----------------------------------------------------

_MISSING = re.compile(r"Object missing required field `([^`]+)`")
_UNKNOWN = re.compile(r"Object contains unknown field `([^`]+)`")
_BOUND = re.compile(r"Expected `(\w+)`(?: of length)? (>=|<=|>|<) (-?\d+)")
_TYPE = re.compile(r"Expected `([^`]+)`, got `(\w+)`")
_TYPES = {
    "int": "an integer",
    "str": "a string",
    "float": "a number",
    "bool": "a boolean",
    "array": "an array",
    "object": "an object",
    "null": "null",
}
_OPS = {">=": "at least", "<=": "at most", ">": "greater than", "<": "less than"}


def field_error(key: str, message: str, source: str | None = None) -> FieldError:
    """Translate one msgspec/Litestar validation message; unknown shapes get a plain reason,
    never the library's text."""
    where = key if key and key != "data" else "$"
    if source == "body" and not where.startswith("$"):
        where = f"$.{where}"
    if match := _MISSING.search(message):
        return FieldError(_join(where, match[1]), "is required")
    if match := _UNKNOWN.search(message):
        return FieldError(_join(where, match[1]), "is not a known field")
    if match := _BOUND.search(message):
        kind, op, number = match.groups()
        if kind == "array":
            return FieldError(where, f"must have {_OPS[op]} {number} items")
        return FieldError(where, f"must be {_OPS[op]} {number}")
    if match := _TYPE.search(message):
        expected = match[1].split(" ")[0].split("|")[0]
        return FieldError(where, f"must be {_TYPES.get(expected, 'of another type')}")
    return FieldError(where, "is invalid")


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


_AT = re.compile(r" - at `(\$[^`]*)`$")


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, list):
        return [_integral(v) for v in value]
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    return value


def decode_strict(raw: bytes, kind: type[T]) -> T:
    """Decode a JSON body exactly (no coercion of "1" into 1, unlike Litestar's own decoding);
    400 for bytes that are not JSON, 422 naming the field for JSON of the wrong shape."""
    try:
        return msgspec.json.decode(raw, type=kind, strict=True)
    except msgspec.ValidationError as exc:
        message = str(exc)
        if message.startswith("Expected `int`, got `float`"):
            # JSON has one number type: 12.0 is the integer 12 (12.5 is still refused).
            try:
                return msgspec.convert(_integral(msgspec.json.decode(raw)), kind, strict=True)
            except msgspec.ValidationError as again:
                message = str(again)
        at = _AT.search(message)
        where = at[1] if at else "$"
        error = field_error(where, message[: at.start()] if at else message, "body")
        raise ApiError(
            422, "VALIDATION_FAILED", "the request body is not a valid request", errors=[error]
        ) from None
    except (msgspec.DecodeError, RecursionError):
        raise ApiError(400, "MALFORMED_REQUEST", "the request body is not valid JSON") from None


def _validation(exc: ValidationException) -> Problem:
    items = exc.extra if isinstance(exc.extra, list) else []
    if any(
        isinstance(i, dict) and i.get("key") == "data" and i.get("message") == "'data'"
        for i in items
    ):
        return Problem(400, "MALFORMED_REQUEST", "a JSON request body is required")
    errors: list[FieldError] = []
    in_body = False
    for item in items:
        if not isinstance(item, dict):
            continue
        source = item.get("source")
        in_body = in_body or source == "body"
        errors.append(field_error(str(item.get("key") or ""), str(item.get("message", "")), source))
    if in_body:
        return Problem(
            422,
            "VALIDATION_FAILED",
            "the request body is not a valid request",
            extras={"errors": errors},
        )
    return Problem(
        400,
        "INVALID_PARAMETER",
        "a request parameter is not valid",
        extras={"errors": errors} if errors else {},
    )


def _http(exc: HTTPException) -> Problem:
    status = exc.status_code
    headers = dict(exc.headers or {})
    if isinstance(exc, ValidationException):
        return _validation(exc)
    if status == 400:
        return Problem(400, "MALFORMED_REQUEST", "the request could not be read (malformed JSON?)")
    if status == 401:
        return Problem(401, "UNAUTHENTICATED", "authentication is required", headers=headers)
    if status == 403:
        return Problem(403, "FORBIDDEN", "this call is not allowed for the caller")
    if status == 404:
        return Problem(404, "NOT_FOUND", "no such resource")
    if status == 405:
        return Problem(405, "METHOD_NOT_ALLOWED", "the method is not allowed here", headers=headers)
    if status == 413:
        return Problem(413, "PAYLOAD_TOO_LARGE", "the request body is too large")
    if status == 415:
        return Problem(415, "UNSUPPORTED_MEDIA_TYPE", "send application/json")
    if status == 429:
        return Problem(429, "TOO_MANY_REQUESTS", "slow down", headers=headers)
    if status >= 500:
        return Problem(status, "INTERNAL_ERROR", "the service failed to answer")
    return Problem(
        status, _phrase(status).upper().replace(" ", "_"), _phrase(status), headers=headers
    )


def problem_for(exc: BaseException, retry_after: int = DEFAULT_RETRY_AFTER) -> Problem:
    """Every known error → its problem; anything else is a 500 without details."""
    match exc:
        case ApiError():
            extras = {"errors": exc.errors} if exc.errors else {}
            return Problem(exc.status, exc.code, exc.detail, headers=exc.headers, extras=extras)
        case Unauthenticated():
            challenge = 'Bearer realm="booking"'
            if exc.code in ("INVALID_TOKEN", "TOKEN_EXPIRED"):
                challenge += ', error="invalid_token"'
            return Problem(401, exc.code, exc.detail, headers={"WWW-Authenticate": challenge})
        case Forbidden() | ApplicationForbidden():
            return Problem(403, "FORBIDDEN", str(exc) or "not allowed")
        case WebhookRefused():
            return Problem(exc.status, exc.code, exc.detail)
        case BookingNotFound():
            return Problem(404, "BOOKING_NOT_FOUND", f"booking {exc.booking_id} not found")
        case ShowNotFound():
            return Problem(404, "SHOW_NOT_FOUND", f"show {exc.show_id} does not exist")
        case SeatConflict() | SeatsUnavailable():
            return Problem(
                409,
                "SEAT_LOCK_CONFLICT",
                "some of the seats are not available; nothing was booked",
                extras={"seat_ids": list(exc.seat_ids)},
            )
        case InvalidBookingRequest():
            return Problem(422, "VALIDATION_FAILED", str(exc))
        case IllegalTransition():
            return Problem(
                409,
                "ILLEGAL_TRANSITION",
                f"the booking is {exc.current}; it cannot {exc.attempted}",
                extras={"current_status": str(exc.current)},
            )
        case SessionMismatch():
            return Problem(409, "PAYMENT_SESSION_MISMATCH", "the session is not this booking's")
        case PaymentMismatch():
            return Problem(422, "PAYMENT_MISMATCH", "the payment does not match the booking")
        case StaleBooking():
            return Problem(
                409,
                "CONCURRENT_UPDATE",
                "the booking changed meanwhile; try again",
                headers={"Retry-After": "1"},
            )
        case DependencyUnavailable():
            return Problem(
                503,
                "DEPENDENCY_UNAVAILABLE",
                f"a service this call needs ({exc.dependency}) is unavailable; try again later",
                headers={"Retry-After": str(retry_after)},
                extras={"dependency": exc.dependency},
            )
        case DuplicateBookingId():
            return Problem(503, "DEPENDENCY_UNAVAILABLE", "try again", headers={"Retry-After": "1"})
        case PaymentRejected() | TheaterRejected():
            return Problem(502, "UPSTREAM_REJECTED", "a peer service refused the operation")
        case HTTPException():
            return _http(exc)
        case RecursionError():
            return Problem(400, "MALFORMED_REQUEST", "the request body is nested too deeply")
    return Problem(500, "INTERNAL_ERROR", "the service failed to answer; it has been logged")


def render(problem: Problem, instance: str) -> tuple[dict[str, str], bytes]:
    headers = {"Content-Type": MEDIA_TYPE, **problem.headers}
    return headers, msgspec.json.encode(problem.document(instance))


def problem_response(problem: Problem, instance: str) -> Response[Any]:
    return Response(
        content=msgspec.json.encode(problem.document(instance)),
        status_code=problem.status,
        media_type=MEDIA_TYPE,
        headers=problem.headers,
    )


def exception_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Litestar's handler for every exception: the single mapping place."""
    retry_after = getattr(request.app.state, "retry_after", DEFAULT_RETRY_AFTER)
    problem = problem_for(exc, retry_after)
    if problem.status >= 500:
        if isinstance(exc, DependencyUnavailable):
            log.warning("%s %s: %s unavailable", request.method, request.url.path, exc.dependency)
        else:
            log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return problem_response(problem, request.url.path)
