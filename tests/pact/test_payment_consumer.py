"""Consumer pacts with the Payment Service, written by driving the real HttpPaymentGateway."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from booking.adapters.http._common import NO_RETRY
from booking.adapters.http.payment import HttpPaymentGateway
from booking.domain.booking import PaymentStatus
from booking.domain.identity import Principal
from booking.domain.money import Money
from booking.ports.errors import PaymentRejected, PaymentUnavailable
from pact import Pact, match
from tests.pact._support import PAYMENT, USER_ID, expect_identity, new_pact, serving

BASE = "/api/v1/internal/payments"
CALLER = Principal.of(USER_ID, f"{USER_ID}_john", ["ROLE_USER"])
BOOKING_ID = 42
AMOUNT = 500.0
JSON = "application/json"


def payment_answer(status: str, *, definitive: bool) -> dict[str, Any]:
    """The PaymentResponse shape: ids filled in a 200, null in every error body."""
    if not definitive:
        return {
            "paymentId": None,
            "bookingId": None,
            "paymentStatus": status,
            "transactionId": None,
            "amount": None,
            "message": match.str("Payment verification failed"),
        }
    return {
        "paymentId": match.int(5),
        "bookingId": match.int(BOOKING_ID),
        "paymentStatus": status,
        "transactionId": match.str("cs_test_a1"),
        "amount": match.number(AMOUNT),
        "message": match.str("Payment verification successful"),
    }


def create_request(pact: Pact, description: str, amount: float) -> Any:
    interaction = pact.upon_receiving(description).with_request("POST", f"{BASE}/checkout/create")
    return expect_identity(interaction).with_body(
        {
            "bookingId": match.int(BOOKING_ID),
            "userId": match.int(USER_ID),
            "amount": match.number(amount),
            "successUrl": None,
            "cancelUrl": None,
        },
        content_type=JSON,
    )


def verify_request(pact: Pact, description: str, session_id: str) -> Any:
    interaction = pact.upon_receiving(description).with_request(
        "GET", f"{BASE}/checkout/verify/{session_id}"
    )
    return expect_identity(interaction)


@asynccontextmanager
async def gateway_for(pact: Pact) -> AsyncIterator[HttpPaymentGateway]:
    with serving(pact) as url:
        gateway = HttpPaymentGateway(base_url=url, timeout=5.0, verify_retry=NO_RETRY)
        try:
            yield gateway
        finally:
            await gateway.aclose()


async def test_create_a_checkout() -> None:
    """create: 200 with sessionId, paymentUrl, the same bookingId and amount, epoch expiresAt."""
    pact = new_pact(PAYMENT)
    (
        create_request(pact, "a request to create a checkout", AMOUNT)
        .given("the card gateway is working")
        .will_respond_with(200)
        .with_body(
            {
                "sessionId": match.str("cs_test_a1"),
                "paymentUrl": match.str("https://checkout.example/c/pay/cs_test_a1"),
                "bookingId": match.int(BOOKING_ID),
                "amount": match.number(AMOUNT),
                "status": match.str("pending"),
                "message": match.str("Checkout session created."),
                "expiresAt": match.int(1764018000),
            },
            content_type=JSON,
        )
    )
    async with gateway_for(pact) as gateway:
        session = await gateway.create_checkout(BOOKING_ID, Money(50_000), CALLER)
    assert session.session_id == "cs_test_a1"
    assert session.expires_at is not None
    assert int(session.expires_at.timestamp()) == 1764018000


async def test_create_below_one_rupee_is_refused() -> None:
    """create under ₹1: 400 INVALID_REQUEST with null ids → PaymentRejected."""
    pact = new_pact(PAYMENT)
    (
        create_request(pact, "a request to create a checkout for less than one rupee", 0.5)
        .will_respond_with(400)
        .with_body(payment_answer("INVALID_REQUEST", definitive=False), content_type=JSON)
    )
    async with gateway_for(pact) as gateway:
        with pytest.raises(PaymentRejected):
            await gateway.create_checkout(BOOKING_ID, Money(50), CALLER)


async def test_create_while_the_card_gateway_fails() -> None:
    """create during a transient card-gateway error: 400 FAILED → PaymentUnavailable."""
    pact = new_pact(PAYMENT)
    (
        create_request(pact, "a request to create a checkout while the card gateway fails", AMOUNT)
        .given("the card gateway fails transiently")
        .will_respond_with(400)
        .with_body(payment_answer("FAILED", definitive=False), content_type=JSON)
    )
    async with gateway_for(pact) as gateway:
        with pytest.raises(PaymentUnavailable):
            await gateway.create_checkout(BOOKING_ID, Money(50_000), CALLER)


VERIFY_CASES: list[tuple[str, str, dict[str, Any], int, str, bool, PaymentStatus]] = [
    (
        "a request to verify a paid checkout",
        "cs_test_paid",
        {"state": "paid"},
        200,
        "COMPLETED",
        True,
        PaymentStatus.COMPLETED,
    ),
    (
        "a request to verify an unpaid checkout",
        "cs_test_unpaid",
        {"state": "unpaid"},
        200,
        "PENDING",
        True,
        PaymentStatus.PENDING,
    ),
    (
        "a request to verify an expired checkout",
        "cs_test_expired",
        {"state": "expired"},
        200,
        "FAILED",
        True,
        PaymentStatus.FAILED,
    ),
]


@pytest.mark.parametrize(
    ("description", "session_id", "params", "http", "status", "definitive", "expected"),
    VERIFY_CASES,
    ids=["completed", "pending", "failed"],
)
async def test_verify_a_checkout(
    description: str,
    session_id: str,
    params: dict[str, Any],
    http: int,
    status: str,
    definitive: bool,
    expected: PaymentStatus,
) -> None:
    """verify: a 200 with COMPLETED, PENDING or FAILED is taken as said, with booking and amount."""
    pact = new_pact(PAYMENT)
    (
        verify_request(pact, description, session_id)
        .given(
            "a checkout session exists",
            sessionId=session_id,
            bookingId=BOOKING_ID,
            amount=AMOUNT,
            **params,
        )
        .will_respond_with(http)
        .with_body(payment_answer(status, definitive=definitive), content_type=JSON)
    )
    async with gateway_for(pact) as gateway:
        result = await gateway.verify(session_id, CALLER)
    assert result.status is expected
    assert (result.booking_id, result.amount) == (BOOKING_ID, Money(50_000))


ERROR_CASES: list[tuple[str, str, Callable[[Any], Any], int, str]] = [
    (
        "a request to verify an unknown checkout",
        "cs_test_unknown",
        lambda i: i.given("no checkout session exists", sessionId="cs_test_unknown"),
        404,
        "NOT_FOUND",
    ),
    (
        "a request to verify a paid checkout while the card gateway fails",
        "cs_test_paid",
        lambda i: i.given(
            "a checkout session exists",
            sessionId="cs_test_paid",
            bookingId=BOOKING_ID,
            amount=AMOUNT,
            state="paid",
        ).given("the card gateway fails transiently"),
        400,
        "FAILED",
    ),
    (
        "a request to verify a checkout while the payment service is failing",
        "cs_test_unpaid",
        lambda i: i.given("the payment service fails unexpectedly"),
        500,
        "ERROR",
    ),
]


@pytest.mark.parametrize(
    ("description", "session_id", "states", "http", "status"),
    ERROR_CASES,
    ids=["404-not-found", "400-failed-trap", "500-error"],
)
async def test_verify_errors_are_unknown(
    description: str, session_id: str, states: Callable[[Any], Any], http: int, status: str
) -> None:
    """verify: 404 NOT_FOUND, the 400 FAILED trap and 500 ERROR (null ids) are all UNKNOWN."""
    pact = new_pact(PAYMENT)
    interaction = states(verify_request(pact, description, session_id))
    interaction.will_respond_with(http).with_body(
        payment_answer(status, definitive=False), content_type=JSON
    )
    async with gateway_for(pact) as gateway:
        result = await gateway.verify(session_id, CALLER)
    assert result.status is PaymentStatus.UNKNOWN
    assert result.booking_id is None


async def test_health() -> None:
    """ping: the actuator health endpoint answers 200."""
    pact = new_pact(PAYMENT)
    (
        pact.upon_receiving("a health check")
        .with_request("GET", "/actuator/health")
        .will_respond_with(200)
        .with_body({"status": "UP"}, content_type=JSON)
    )
    async with gateway_for(pact) as gateway:
        await gateway.ping()
