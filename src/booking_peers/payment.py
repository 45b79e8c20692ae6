"""A faithful stand-in of the platform's Payment Service (checkout create and verify).

Wire behaviour (contracts section 2): create opens a new checkout every time (no idempotency),
sessions live 5 hours, verify answers PENDING / COMPLETED / FAILED in a 200, errors use the
PaymentResponse shape with null ids (404 NOT_FOUND, 400 FAILED for a transient gateway error,
400 INVALID_REQUEST for an amount below 1, 400 VALIDATION_ERROR, 500 ERROR for a non-numeric
X-User-Id). A declined card leaves the checkout PENDING; an expired one is FAILED.

Control endpoints for tests (under `/__control`): seed/list sessions, mark a session paid,
declined or expired, make the next calls fail with the gateway's transient error, make answers
lie about the booking id or amount, expire pending payments after N seconds, reset.
"""

from __future__ import annotations

import html
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

from litestar import Litestar, Request, Response, delete, get, post
from litestar.handlers import HTTPRouteHandler

from booking_peers.common import (
    as_long,
    identity_problem,
    json_body,
    json_response,
    spring_error,
)
from booking_peers.faults import FaultInjector

BASE = "/api/v1/internal/payments"
SESSION_LIFETIME_SECONDS = 5 * 60 * 60
UNEXPECTED = "An unexpected error occurred. Please try again later."


@dataclass(slots=True)
class Checkout:
    session_id: str
    payment_id: int
    booking_id: int
    user_id: int
    amount: float
    success_url: str | None
    cancel_url: str | None
    created_at: float
    expires_at: float
    state: str = "unpaid"  # unpaid | paid | declined | expired
    verifications: int = 0


@dataclass(slots=True)
class PaymentState:
    checkouts: dict[str, Checkout]
    next_payment_id: int = 1
    gateway_errors: int = 0
    tamper_booking_id: int | None = None
    tamper_amount: float | None = None
    pending_timeout_seconds: float | None = None

    def reset(self) -> None:
        self.checkouts.clear()
        self.gateway_errors = 0
        self.tamper_booking_id = None
        self.tamper_amount = None
        self.pending_timeout_seconds = None

    def take_gateway_error(self) -> bool:
        if self.gateway_errors > 0:
            self.gateway_errors -= 1
            return True
        return False

    def open(
        self,
        *,
        booking_id: int,
        user_id: int,
        amount: float,
        success_url: str | None = None,
        cancel_url: str | None = None,
        session_id: str | None = None,
        state: str = "unpaid",
    ) -> Checkout:
        now = time.time()
        checkout = Checkout(
            session_id=session_id or f"cs_test_{secrets.token_hex(12)}",
            payment_id=self.next_payment_id,
            booking_id=booking_id,
            user_id=user_id,
            amount=amount,
            success_url=success_url,
            cancel_url=cancel_url,
            created_at=now,
            expires_at=now + SESSION_LIFETIME_SECONDS,
            state=state,
        )
        self.next_payment_id += 1
        self.checkouts[checkout.session_id] = checkout
        return checkout

    def status_of(self, checkout: Checkout) -> str:
        now = time.time()
        if checkout.state == "paid":
            return "COMPLETED"
        if checkout.state == "expired" or now >= checkout.expires_at:
            return "FAILED"
        timeout = self.pending_timeout_seconds
        if timeout is not None and now >= checkout.created_at + timeout:
            # Their expiry job fails PENDING payments quietly.
            return "FAILED"
        return "PENDING"  # unpaid, or declined: the user may retry on the same checkout


def payment_response(
    status: int,
    payment_status: str,
    message: str,
    *,
    payment_id: int | None = None,
    booking_id: int | None = None,
    transaction_id: str | None = None,
    amount: float | None = None,
) -> Response[Any]:
    return json_response(
        status,
        {
            "paymentId": payment_id,
            "bookingId": booking_id,
            "paymentStatus": payment_status,
            "transactionId": transaction_id,
            "amount": amount,
            "message": message,
        },
    )


def _refuse(request: Request[Any, Any, Any]) -> Response[Any] | None:
    problem = identity_problem(request)
    if problem == "forbidden":
        return spring_error(403, "Forbidden", request.url.path)
    if problem == "not-numeric":
        return payment_response(500, "ERROR", UNEXPECTED)
    return None


def build_routes(state: PaymentState) -> list[HTTPRouteHandler]:  # noqa: PLR0915
    @post(f"{BASE}/checkout/create", status_code=200)
    async def create_checkout(request: Request[Any, Any, Any]) -> Response[Any]:
        if (refusal := _refuse(request)) is not None:
            return refusal
        body = await json_body(request)
        if not isinstance(body, dict):
            return payment_response(400, "VALIDATION_ERROR", "Malformed JSON request")
        booking_id, user_id, amount = (
            as_long(body.get("bookingId")),
            as_long(body.get("userId")),
            body.get("amount"),
        )
        problems = []
        if booking_id is None:
            problems.append("bookingId: Booking ID is required")
        if user_id is None:
            problems.append("userId: User ID is required")
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            problems.append("amount: Amount is required")
        if problems or booking_id is None or user_id is None or amount is None:
            return payment_response(400, "VALIDATION_ERROR", ", ".join(problems))
        if amount < 1:
            return payment_response(400, "INVALID_REQUEST", "Amount must be greater than 0")
        if state.take_gateway_error():
            return payment_response(
                400, "FAILED", "Too many requests. Please try again in a few moments."
            )
        checkout = state.open(
            booking_id=booking_id,
            user_id=user_id,
            amount=float(amount),
            success_url=body.get("successUrl"),
            cancel_url=body.get("cancelUrl"),
        )
        base = str(request.base_url).rstrip("/")
        return json_response(
            200,
            {
                "sessionId": checkout.session_id,
                "paymentUrl": f"{base}/checkout/{checkout.session_id}",
                "bookingId": _reported_booking(state, checkout),
                "amount": _reported_amount(state, checkout),
                "status": "pending",
                "message": "Checkout session created. "
                "Go to the provided paymentUrl to complete payment.",
                "expiresAt": int(checkout.expires_at),
            },
        )

    @get(f"{BASE}/checkout/verify/{{session_id:str}}")
    async def verify_checkout(request: Request[Any, Any, Any], session_id: str) -> Response[Any]:
        if (refusal := _refuse(request)) is not None:
            return refusal
        if state.take_gateway_error():
            return payment_response(
                400, "FAILED", "Too many requests. Please try again in a few moments."
            )
        checkout = state.checkouts.get(session_id)
        if checkout is None:
            return payment_response(
                404, "NOT_FOUND", f"Payment not found for session ID: {session_id}"
            )
        checkout.verifications += 1
        return payment_response(
            200,
            state.status_of(checkout),
            "Payment verification successful",
            payment_id=checkout.payment_id,
            booking_id=_reported_booking(state, checkout),
            transaction_id=checkout.session_id,
            amount=_reported_amount(state, checkout),
        )

    @get("/actuator/health")
    async def health() -> Response[Any]:
        return json_response(200, {"status": "UP"})

    @get("/checkout/{session_id:str}")
    async def checkout_page(session_id: str) -> Response[Any]:
        checkout = state.checkouts.get(session_id)
        if checkout is None:
            return Response(content="unknown checkout", status_code=404, media_type="text/plain")
        sid = html.escape(session_id)
        page = (
            f"<!doctype html><title>Checkout {sid}</title>"
            f"<h1>Pay ₹{checkout.amount:.2f} for booking {checkout.booking_id}</h1>"
            f'<form method="post" action="/checkout/{sid}/pay">'
            '<button id="pay">Pay</button></form>'
            f'<form method="post" action="/checkout/{sid}/decline">'
            '<button id="decline">Decline</button></form>'
        )
        return Response(content=page, status_code=200, media_type="text/html")

    @post("/checkout/{session_id:str}/{action:str}", status_code=200)
    async def checkout_action(session_id: str, action: str) -> Response[Any]:
        answer = _apply(state, session_id, action)
        checkout = state.checkouts.get(session_id)
        back = None
        if checkout is not None and answer.status_code == 200:
            back = checkout.success_url if action == "pay" else checkout.cancel_url
        if back:
            # Like the hosted checkout page: back to the shop after paying or giving up.
            return Response(content=b"", status_code=303, headers={"Location": back})
        return answer

    @post("/__control/sessions", status_code=201)
    async def seed_session(request: Request[Any, Any, Any]) -> Response[Any]:
        body = await json_body(request)
        if not isinstance(body, dict):
            return json_response(400, {"error": "a JSON object is required"})
        checkout = state.open(
            booking_id=int(body["bookingId"]),
            user_id=int(body.get("userId", 1)),
            amount=float(body["amount"]),
            session_id=body.get("sessionId"),
            state=str(body.get("state", "unpaid")),
        )
        return json_response(201, asdict(checkout))

    @get("/__control/sessions")
    async def list_sessions() -> Response[Any]:
        return json_response(200, [_described(state, c) for c in state.checkouts.values()])

    @get("/__control/sessions/{session_id:str}")
    async def one_session(session_id: str) -> Response[Any]:
        checkout = state.checkouts.get(session_id)
        if checkout is None:
            return json_response(404, {"error": "unknown session"})
        return json_response(200, _described(state, checkout))

    @post("/__control/sessions/{session_id:str}/{action:str}", status_code=200)
    async def control_session(session_id: str, action: str) -> Response[Any]:
        return _apply(state, session_id, action)

    @post("/__control/gateway-errors", status_code=200)
    async def gateway_errors(request: Request[Any, Any, Any]) -> Response[Any]:
        body = await json_body(request) or {}
        state.gateway_errors = int(body.get("count", 1))
        return json_response(200, {"gatewayErrors": state.gateway_errors})

    @post("/__control/tamper", status_code=200)
    async def tamper(request: Request[Any, Any, Any]) -> Response[Any]:
        body = await json_body(request) or {}
        state.tamper_booking_id = body.get("bookingId")
        state.tamper_amount = body.get("amount")
        return json_response(
            200, {"bookingId": state.tamper_booking_id, "amount": body.get("amount")}
        )

    @delete("/__control/tamper", status_code=200)
    async def untamper() -> Response[Any]:
        state.tamper_booking_id = None
        state.tamper_amount = None
        return json_response(200, {"cleared": True})

    @post("/__control/settings", status_code=200)
    async def settings(request: Request[Any, Any, Any]) -> Response[Any]:
        body = await json_body(request) or {}
        timeout = body.get("pendingTimeoutSeconds")
        state.pending_timeout_seconds = None if timeout is None else float(timeout)
        return json_response(200, {"pendingTimeoutSeconds": state.pending_timeout_seconds})

    @post("/__control/reset", status_code=200)
    async def reset() -> Response[Any]:
        state.reset()
        return json_response(200, {"reset": True})

    return [
        create_checkout,
        verify_checkout,
        health,
        checkout_page,
        checkout_action,
        seed_session,
        list_sessions,
        one_session,
        control_session,
        gateway_errors,
        tamper,
        untamper,
        settings,
        reset,
    ]


def _reported_booking(state: PaymentState, checkout: Checkout) -> int:
    return state.tamper_booking_id if state.tamper_booking_id is not None else checkout.booking_id


def _reported_amount(state: PaymentState, checkout: Checkout) -> float:
    return state.tamper_amount if state.tamper_amount is not None else checkout.amount


def _described(state: PaymentState, checkout: Checkout) -> dict[str, Any]:
    return {**asdict(checkout), "paymentStatus": state.status_of(checkout)}


def _apply(state: PaymentState, session_id: str, action: str) -> Response[Any]:
    checkout = state.checkouts.get(session_id)
    if checkout is None:
        return json_response(404, {"error": "unknown session"})
    new_state = {"pay": "paid", "decline": "declined", "expire": "expired"}.get(action)
    if new_state is None:
        return json_response(400, {"error": f"unknown action {action}"})
    if checkout.state == "paid" and new_state != "paid":
        return json_response(409, {"error": "already paid"})
    checkout.state = new_state
    return json_response(200, _described(state, checkout))


def create_app() -> FaultInjector:
    """The Payment Service as an ASGI app, wrapped with switchable faults."""
    state = PaymentState(checkouts={})
    app = Litestar(route_handlers=build_routes(state), openapi_config=None)
    app.state.payment = state
    return FaultInjector(app)
