"""The public Booking API under /api/v1/bookings and the payment webhook."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from dishka import FromDishka
from dishka.integrations.litestar import inject
from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import HeaderParameter, PathParameter, QueryParameter
from litestar.types import BeforeRequestHookHandler

from booking.adapters.prometheus import PrometheusTelemetry
from booking.application.create import CreateBooking
from booking.application.errors import BookingNotFound, SeatConflict
from booking.application.payments import ApplyPaymentResult, VerifyPayment
from booking.application.queries import BookingQueries, CancelBooking
from booking.domain.booking import BookingStatus, FailureReason, PaymentResult, PaymentStatus
from booking.domain.errors import DomainError, PaymentMismatch
from booking.domain.identity import Principal
from booking.domain.money import Money
from booking.entrypoints import examples
from booking.entrypoints.idempotency import HEADER as IDEMPOTENCY_HEADER
from booking.entrypoints.idempotency import Idempotency, fingerprint, parse_key
from booking.entrypoints.identity import (
    BOOKING_ROLES,
    SEAT_READER_ROLES,
    Authenticator,
    parse_user_id,
    require_role,
)
from booking.entrypoints.limits import CreationLimit
from booking.entrypoints.problems import ApiError, decode_strict, exception_handler
from booking.entrypoints.schemas import (
    BookingPage,
    BookingView,
    CreateBookingRequest,
    SeatView,
    WebhookAck,
    WebhookPayload,
    booking_view,
    decode_cursor,
    page_view,
    seat_view,
)
from booking.entrypoints.webhook import SIGNATURE_HEADER, WebhookRefused, WebhookVerifier
from booking.entrypoints.workers import RelayNudge

BASE = "/api/v1/bookings"

BookingId = Annotated[
    str,
    PathParameter(
        description="the booking id (a positive 64-bit integer)",
        schema_extra={"type": "integer", "format": "int64", "minimum": 1},
    ),
]


def booking_id_of(text: str) -> int:
    """400, not 404, for a path id that is not an id at all."""
    parsed = parse_user_id(text)
    if parsed is None:
        raise ApiError(400, "INVALID_BOOKING_ID", "the booking id must be a positive integer")
    return parsed


def _json(view: msgspec.Struct) -> bytes:
    return msgspec.json.encode(view)


_CALLER = "booking.caller"


def caller_of(request: Request[Any, Any, Any], auth: Authenticator) -> Principal:
    """The request's caller, authenticated once per request (raises 401 without an identity):
    the before-request hook does it first, and the request's container's `Principal` is this
    same one."""
    state: dict[str, Any] = request.scope.setdefault("state", {})
    caller: Principal | None = state.get(_CALLER)
    if caller is None:
        client = request.scope.get("client")
        caller = auth.authenticate(request.headers, client[0] if client else None)
        state[_CALLER] = caller
    return caller


async def authenticated(request: Request[Any, Any, Any]) -> None:
    """Before-request hook: identity first (401), then the role the handler names in
    `opt["roles"]` (403), before any parameter or the body is read. The Authenticator is the
    one the app resolved at start-up: asking the request's container for the Principal would
    enter dishka's request scope on every request, which a held-seat rejection does not
    otherwise need. A hook rather than a guard: Litestar copies the route handler for every
    guard it runs, on every request."""
    caller = caller_of(request, request.app.state.authenticator)
    require_role(caller, *request.route_handler.opt.get("roles", BOOKING_ROLES))


@dataclass(frozen=True, slots=True)
class CreateRoute:
    """What the create handler works with besides its caller, resolved once when the app
    starts (`app.state.create_route`): every create, and in an on-sale every rejection, finds
    it there instead of asking dishka for four dependencies."""

    create: CreateBooking
    idempotency: Idempotency
    nudge: RelayNudge
    limit: CreationLimit


@dataclass
class _CreateOperation(Operation):
    """The create handler decodes its body itself (strictly); documented from its type."""

    def __post_init__(self) -> None:
        self.request_body = examples.json_body(
            CreateBookingRequest, examples.CREATE_REQUEST, "the show and 1 to 10 distinct seats"
        )


class BookingController(Controller):
    path = BASE
    tags = ["bookings"]  # noqa: RUF012 - Litestar's class attribute
    before_request: BeforeRequestHookHandler | None = authenticated

    @post(
        "/",
        status_code=201,
        operation_class=_CreateOperation,
        summary="Hold seats and open a payment checkout",
        description=(
            "Validates the seats, holds them, records a PENDING booking and opens the checkout. "
            "Send `Idempotency-Key` to make a retry safe: the same key and body answer the "
            "first answer again for 24 hours."
        ),
        responses={
            201: ResponseSpec(
                BookingView,
                description="The booking, PENDING, with its payment URL and hold expiry",
                examples=[examples.BOOKING_EXAMPLE],
                generate_examples=False,
            ),
            **examples.problems(400, 401, 403, 404, 409, 413, 422, 429, 503),
        },
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        idempotency_key: Annotated[
            str | None,
            HeaderParameter(
                name=IDEMPOTENCY_HEADER,
                description="1-255 visible ASCII characters, unique per intended booking",
                required=False,
            ),
        ] = None,
    ) -> Response[BookingView]:
        # Not injected: the commonest request of an on-sale needs nothing request-scoped, so
        # it never enters dishka's request scope (see `request_scope`).
        caller = caller_of(request, request.app.state.authenticator)
        route: CreateRoute = request.app.state.create_route
        route.limit.check(caller)
        # Decoded here, strictly: Litestar's own decoding would coerce "1" into 1.
        data = decode_strict(await request.body(), CreateBookingRequest)
        key = parse_key(idempotency_key)

        async def run() -> tuple[int, bytes, int | None]:
            try:
                booking = await route.create(caller, data.show_id, list(data.seat_ids))
            except BaseException as exc:
                # A failed create may have queued its compensation; a plain rejection (a seat
                # conflict with no FAILED booking recorded) wrote nothing to dispatch.
                if not isinstance(exc, SeatConflict) or exc.failed_booking_id is not None:
                    route.nudge.set()
                raise
            return 201, _json(booking_view(booking)), booking.booking_id

        if key is None:
            try:
                _, body, booking_id = await run()
            except SeatConflict as exc:
                # The commonest answer of an on-sale, mapped by the one exception handler
                # without unwinding through Litestar's exception middleware.
                return exception_handler(request, exc)
            return Response(
                content=body,  # type: ignore[arg-type]
                status_code=201,
                media_type="application/json",
                headers={"Location": f"{BASE}/{booking_id}"},
            )
        request_fingerprint = fingerprint("POST", BASE, _json(data))
        return await route.idempotency.run(
            f"user:{caller.user_id}", key, request_fingerprint, request.url.path, BASE, run
        )

    @get(
        "/",
        summary="The caller's own bookings, newest first",
        responses={
            200: ResponseSpec(
                BookingPage,
                description="A page of bookings",
                examples=[examples.PAGE_EXAMPLE],
                generate_examples=False,
            ),
            **examples.problems(400, 401, 403, 503),
        },
    )
    @inject
    async def list_own(
        self,
        caller: FromDishka[Principal],
        queries: FromDishka[BookingQueries],
        status_filter: Annotated[
            BookingStatus | None, QueryParameter(name="status", description="only this status")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100, description="page size")] = 20,
        cursor: Annotated[
            str | None,
            QueryParameter(max_length=200, description="`nextCursor` of the previous page"),
        ] = None,
    ) -> BookingPage:
        after = None
        if cursor is not None:
            after = decode_cursor(cursor)
            if after is None:
                raise ApiError(400, "INVALID_CURSOR", "the cursor is not one this service made")
        page = await queries.list_own(caller, status=status_filter, limit=limit, after=after)
        return page_view(page)

    @get(
        "/{booking_id:str}",
        summary="One booking of the caller",
        responses={
            200: ResponseSpec(
                BookingView,
                description="The booking",
                examples=[examples.BOOKING_EXAMPLE],
                generate_examples=False,
            ),
            **examples.problems(400, 401, 403, 404, 503),
        },
    )
    async def get_one(self, request: Request[Any, Any, Any], booking_id: BookingId) -> BookingView:
        # Not injected, as `create`: a read needs nothing request-scoped either.
        caller = caller_of(request, request.app.state.authenticator)
        queries: BookingQueries = request.app.state.queries
        return booking_view(await queries.get(caller, booking_id_of(booking_id)))

    @get(
        "/{booking_id:str}/seats",
        opt={"roles": SEAT_READER_ROLES},
        summary="The seats of a booking (owner or service account)",
        description="The Notification Service reads the ticket data here after booking_success.",
        responses={
            200: ResponseSpec(
                list[SeatView],
                description="The seats",
                examples=[examples.SEATS_EXAMPLE],
                generate_examples=False,
            ),
            **examples.problems(400, 401, 403, 404, 503),
        },
    )
    @inject
    async def seats(
        self,
        booking_id: BookingId,
        caller: FromDishka[Principal],
        queries: FromDishka[BookingQueries],
    ) -> list[SeatView]:
        return [seat_view(s) for s in await queries.seats(caller, booking_id_of(booking_id))]

    @get(
        "/{booking_id:str}/verify-payment",
        summary="Ask the payment side once and apply its answer",
        description=(
            "Answers the booking (CONFIRMED once paid). 402 PAYMENT_FAILED when the payment "
            "failed; 409 when `sessionId` is not the booking's own session."
        ),
        responses={
            200: ResponseSpec(
                BookingView,
                description="The booking after the check",
                examples=[examples.CONFIRMED_EXAMPLE],
                generate_examples=False,
            ),
            **examples.problems(400, 401, 402, 403, 404, 409, 503),
        },
    )
    @inject
    async def verify_payment(
        self,
        booking_id: BookingId,
        caller: FromDishka[Principal],
        verify: FromDishka[VerifyPayment],
        nudge: FromDishka[RelayNudge],
        session_id: Annotated[
            str | None,
            QueryParameter(name="sessionId", max_length=255, description="the checkout session"),
        ] = None,
    ) -> BookingView:
        try:
            booking = await verify(caller, booking_id_of(booking_id), session_id)
        finally:
            nudge.set()
        if booking.failure_reason is FailureReason.PAYMENT_FAILED:
            raise ApiError(402, "PAYMENT_FAILED", "the payment for this booking failed")
        return booking_view(booking)

    @post(
        "/{booking_id:str}/cancel",
        status_code=200,
        summary="Cancel a PENDING booking of the caller",
        description="Releases the seats and abandons the checkout. Other states answer 409.",
        responses={
            200: ResponseSpec(
                BookingView,
                description="The cancelled booking",
                examples=[examples.CANCELLED_EXAMPLE],
                generate_examples=False,
            ),
            **examples.problems(400, 401, 403, 404, 409, 503),
        },
    )
    @inject
    async def cancel(
        self,
        booking_id: BookingId,
        caller: FromDishka[Principal],
        cancel: FromDishka[CancelBooking],
        nudge: FromDishka[RelayNudge],
    ) -> BookingView:
        try:
            booking = await cancel(caller, booking_id_of(booking_id))
        finally:
            nudge.set()
        return booking_view(booking)


_WIRE_STATUSES = {
    s.value: s for s in (PaymentStatus.COMPLETED, PaymentStatus.FAILED, PaymentStatus.PENDING)
}


def _result_of(payload: WebhookPayload) -> PaymentResult:
    status = _WIRE_STATUSES.get(payload.status.upper())
    if status is None:
        raise ApiError(422, "VALIDATION_FAILED", "status must be COMPLETED, FAILED or PENDING")
    try:
        amount = Money.from_major(payload.amount) if payload.amount is not None else None
    except DomainError:
        raise ApiError(422, "VALIDATION_FAILED", "amount is not an amount") from None
    return PaymentResult(payload.session_id, status, payload.booking_id, amount)


@dataclass
class _WebhookOperation(examples.PublicOperation):
    """The webhook reads its raw body (the signature covers the bytes), so its request body is
    documented here rather than inferred from a `data` parameter."""

    def __post_init__(self) -> None:
        super().__post_init__()
        text = Schema(type=OpenAPIType.STRING)
        self.request_body = RequestBody(
            required=True,
            description="A payment result; amount in rupees",
            content={
                "application/json": OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT,
                        required=["sessionId", "status"],
                        properties={
                            "sessionId": text,
                            "status": Schema(
                                type=OpenAPIType.STRING, enum=["COMPLETED", "FAILED", "PENDING"]
                            ),
                            "bookingId": Schema(type=OpenAPIType.INTEGER, minimum=1),
                            "amount": Schema(type=OpenAPIType.NUMBER),
                        },
                    ),
                    examples={"completed": examples.WEBHOOK_EXAMPLE},
                )
            },
        )


@post(
    "/api/v1/payments/webhook",
    status_code=200,
    operation_class=_WebhookOperation,
    tags=["payments"],
    summary="A payment result pushed by the payment side (signed)",
    description=(
        '`Booking-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "{t}.{raw body}">` with '
        "the shared BOOKING_WEBHOOK_SECRET. Stale, forged, replayed or malformed calls change "
        "nothing and get a 4xx; an unknown session is acknowledged (202) without effect."
    ),
    responses={
        200: ResponseSpec(
            WebhookAck,
            description="Applied to its booking",
            examples=[examples.WEBHOOK_ACK_EXAMPLE],
            generate_examples=False,
        ),
        202: ResponseSpec(WebhookAck, description="Unknown session: acknowledged, no effect"),
        **examples.problems(400, 401, 404, 409, 413, 422, 503),
    },
)
@inject
async def payment_webhook(
    request: Request[Any, Any, Any],
    verifier: FromDishka[WebhookVerifier],
    apply: FromDishka[ApplyPaymentResult],
    nudge: FromDishka[RelayNudge],
    metrics: FromDishka[PrometheusTelemetry],
    signature: Annotated[
        str | None, HeaderParameter(name=SIGNATURE_HEADER, required=False, description="t=…,v1=…")
    ] = None,
) -> Response[WebhookAck]:
    body = await request.body()  # the raw bytes are what is signed: verify before decoding
    try:
        key = await verifier.verify(signature, body)
    except WebhookRefused:
        metrics.webhook("refused")
        raise
    try:
        result = _result_of(decode_strict(body, WebhookPayload))
        booking = await apply(result, booking_id=None, actor="webhook")
    except BookingNotFound:
        await verifier.settled(key, 202)
        metrics.webhook("ignored")
        return Response(WebhookAck("ignored"), status_code=202)
    except (ApiError, PaymentMismatch) as exc:
        await verifier.settled(key, exc.status if isinstance(exc, ApiError) else 422)
        metrics.webhook("refused")
        raise
    except Exception:
        await verifier.failed(key)  # a 5xx: the payment side may deliver it again
        raise
    finally:
        nudge.set()
    await verifier.settled(key, 200)
    metrics.webhook("applied")
    return Response(
        WebhookAck("applied", booking.booking_id, booking.status.value), status_code=200
    )
