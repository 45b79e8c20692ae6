"""HttpPaymentGateway against the real Payment Service stand-in: every path, the traps, faults."""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import structlog

from booking.adapters.http._common import RetryPolicy
from booking.adapters.http.directory import StaticServiceDirectory
from booking.adapters.http.payment import HttpPaymentGateway
from booking.domain.booking import PaymentStatus
from booking.domain.identity import Principal
from booking.domain.money import Money
from booking.ports.errors import PaymentRejected, PaymentUnavailable
from tests.support.peers import PaymentPeer

FAST_RETRY = RetryPolicy(
    attempts=3, timeout=10.0, wait_initial=0.01, wait_max=0.05, wait_jitter=0.01
)
USER = Principal.of(7, "7_john", ["ROLE_USER"])
PRICE = Money(50_000)  # ₹500.00
CREATE = "/checkout/create"
VERIFY = "/checkout/verify/"


def new_booking_id() -> int:
    return random.randrange(1, 2**40)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def payment(payment_service: PaymentPeer) -> Iterator[PaymentPeer]:
    def clean() -> None:
        payment_service.clear_faults()
        payment_service.clear_requests()
        payment_service.untamper()
        payment_service.gateway_errors(0)
        payment_service.pending_timeout(None)

    clean()
    yield payment_service
    clean()


@pytest.fixture
async def gateway(payment: PaymentPeer) -> AsyncIterator[HttpPaymentGateway]:
    gw = HttpPaymentGateway(base_url=payment.url, timeout=0.5, verify_retry=FAST_RETRY)
    yield gw
    await gw.aclose()


async def test_create_opens_one_checkout_with_the_wire_body(
    gateway: HttpPaymentGateway, payment: PaymentPeer
) -> None:
    """create sends bookingId, userId, rupee amount and null URLs, and answers the session."""
    booking_id = new_booking_id()
    before = datetime.now(UTC)
    session = await gateway.create_checkout(booking_id, PRICE, USER)

    [sent] = payment.requests(CREATE)
    assert sent["body"] == {
        "bookingId": booking_id,
        "userId": 7,
        "amount": 500.0,
        "successUrl": None,
        "cancelUrl": None,
    }
    [stored] = payment.sessions_for(booking_id)
    assert session.session_id == stored["session_id"]
    assert session.url.endswith(f"/checkout/{session.session_id}")
    assert session.expires_at is not None
    assert session.expires_at.tzinfo is not None
    assert before + timedelta(hours=4, minutes=59) < session.expires_at
    assert session.expires_at < before + timedelta(hours=5, minutes=1)


async def test_paise_are_sent_as_rupees(gateway: HttpPaymentGateway, payment: PaymentPeer) -> None:
    """Money in minor units goes on the wire as a rupee float (250.75), and comes back equal."""
    booking_id = new_booking_id()
    await gateway.create_checkout(booking_id, Money(25_075), USER)
    [sent] = payment.requests(CREATE)
    assert sent["body"]["amount"] == 250.75


async def test_identity_headers_are_numeric_and_carry_the_service_role(
    gateway: HttpPaymentGateway, payment: PaymentPeer
) -> None:
    """Every call sends a numeric X-User-Id, the name, caller + service roles, a request id."""
    session = await gateway.create_checkout(new_booking_id(), PRICE, USER)
    await gateway.verify(session.session_id, USER)
    for sent in payment.requests():
        headers = sent["headers"]
        assert headers["x-user-id"] == "7"
        assert headers["x-user-id"].isdigit()
        assert headers["x-user-name"] == "7_john"
        assert headers["x-user-roles"] == "ROLE_USER,ROLE_SERVICE_ACCOUNT"
        assert headers["x-request-id"]


async def test_correlation_ids_come_from_the_log_context(
    gateway: HttpPaymentGateway, payment: PaymentPeer
) -> None:
    """request_id, trace_id and traceparent bound in structlog's context are passed on."""
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with structlog.contextvars.bound_contextvars(
        request_id="req-123", trace_id="trace-9", traceparent=traceparent
    ):
        await gateway.create_checkout(new_booking_id(), PRICE, USER)
    [sent] = payment.requests(CREATE)
    assert sent["headers"]["x-request-id"] == "req-123"
    assert sent["headers"]["x-trace-id"] == "trace-9"
    assert sent["headers"]["traceparent"] == traceparent


async def test_background_jobs_send_the_owner_and_the_service_role(
    gateway: HttpPaymentGateway, payment: PaymentPeer
) -> None:
    """A system principal sends the owner's id, "{id}_system" and only the service role."""
    await gateway.create_checkout(new_booking_id(), PRICE, Principal.system(42))
    [sent] = payment.requests(CREATE)
    assert sent["headers"]["x-user-id"] == "42"
    assert sent["headers"]["x-user-name"] == "42_system"
    assert sent["headers"]["x-user-roles"] == "ROLE_SERVICE_ACCOUNT"


async def test_the_service_role_spelling_is_configurable(payment: PaymentPeer) -> None:
    """With the older bare spelling configured, every role goes out without the ROLE_ prefix."""
    gw = HttpPaymentGateway(base_url=payment.url, timeout=0.5, service_role="SERVICE_ACCOUNT")
    try:
        await gw.create_checkout(new_booking_id(), PRICE, USER)
    finally:
        await gw.aclose()
    [sent] = payment.requests(CREATE)
    assert sent["headers"]["x-user-roles"] == "USER,SERVICE_ACCOUNT"


async def test_create_is_not_repeated_after_a_timeout(
    gateway: HttpPaymentGateway, payment: PaymentPeer
) -> None:
    """A create whose answer comes too late is 'unknown' and is never sent a second time."""
    booking_id = new_booking_id()
    payment.add_fault("delay", CREATE, seconds=3.0, phase="after", times=1)
    with pytest.raises(PaymentUnavailable):
        await gateway.create_checkout(booking_id, PRICE, USER)
    assert len(payment.requests(CREATE)) == 1
    assert len(payment.sessions_for(booking_id)) == 1  # the checkout exists: outcome unknown


async def test_create_with_a_dropped_connection_is_unknown_and_not_repeated(
    gateway: HttpPaymentGateway, payment: PaymentPeer
) -> None:
    """A connection dropped after the checkout was opened is PaymentUnavailable, sent once."""
    booking_id = new_booking_id()
    payment.add_fault("drop", CREATE, phase="after", times=1)
    with pytest.raises(PaymentUnavailable):
        await gateway.create_checkout(booking_id, PRICE, USER)
    assert len(payment.requests(CREATE)) == 1
    assert len(payment.sessions_for(booking_id)) == 1


async def test_create_5xx_is_unavailable_and_not_retried(
    gateway: HttpPaymentGateway, payment: PaymentPeer
) -> None:
    """A 500 ERROR answer to create is PaymentUnavailable after exactly one request."""
    payment.add_fault(
        "status", CREATE, status=500, body={"paymentStatus": "ERROR", "bookingId": None}
    )
    with pytest.raises(PaymentUnavailable):
        await gateway.create_checkout(new_booking_id(), PRICE, USER)
    assert len(payment.requests(CREATE)) == 1


async def test_create_400_failed_is_the_transient_gateway_error(
    gateway: HttpPaymentGateway, payment: PaymentPeer
) -> None:
    """Their 400 FAILED (rate limit, network) is transient: PaymentUnavailable, not rejected."""
    booking_id = new_booking_id()
    payment.gateway_errors(1)
    with pytest.raises(PaymentUnavailable):
        await gateway.create_checkout(booking_id, PRICE, USER)
    assert payment.sessions_for(booking_id) == []


async def test_create_below_one_rupee_is_rejected(gateway: HttpPaymentGateway) -> None:
    """An amount under ₹1 is refused for good (400 INVALID_REQUEST → PaymentRejected)."""
    with pytest.raises(PaymentRejected):
        await gateway.create_checkout(new_booking_id(), Money(50), USER)


async def test_create_answer_for_another_booking_is_rejected(
    gateway: HttpPaymentGateway, payment: PaymentPeer
) -> None:
    """A checkout answer naming another booking id is refused."""
    payment.tamper(booking_id=1)
    with pytest.raises(PaymentRejected, match="names booking 1"):
        await gateway.create_checkout(new_booking_id(), PRICE, USER)


async def test_create_answer_with_another_amount_is_rejected(
    gateway: HttpPaymentGateway, payment: PaymentPeer
) -> None:
    """A checkout answer for another amount is refused."""
    payment.tamper(amount=1.0)
    with pytest.raises(PaymentRejected):
        await gateway.create_checkout(new_booking_id(), PRICE, USER)


async def test_create_against_a_closed_port_is_unavailable() -> None:
    """No listener at all is PaymentUnavailable, with the library error chained."""
    gw = HttpPaymentGateway(base_url=closed_port_url(), timeout=0.5)
    try:
        with pytest.raises(PaymentUnavailable) as caught:
            await gw.create_checkout(new_booking_id(), PRICE, USER)
    finally:
        await gw.aclose()
    assert caught.value.__cause__ is not None


async def test_verify_of_a_fresh_checkout_is_pending(
    gateway: HttpPaymentGateway, payment: PaymentPeer
) -> None:
    """An unpaid checkout verifies PENDING with its booking id and amount."""
    booking_id = new_booking_id()
    session = await gateway.create_checkout(booking_id, PRICE, USER)
    result = await gateway.verify(session.session_id, USER)
    assert result.status is PaymentStatus.PENDING
    assert result.session_id == session.session_id
    assert result.booking_id == booking_id
    assert result.amount == PRICE


async def test_verify_of_a_paid_checkout_is_completed(
    gateway: HttpPaymentGateway, payment: PaymentPeer
) -> None:
    """A paid checkout verifies COMPLETED, amount as Money in paise."""
    booking_id = new_booking_id()
    session = await gateway.create_checkout(booking_id, Money(25_075), USER)
    payment.pay(session.session_id)
    result = await gateway.verify(session.session_id, USER)
    assert result.status is PaymentStatus.COMPLETED
    assert result.booking_id == booking_id
    assert result.amount == Money(25_075)


async def test_a_declined_card_stays_pending(
    gateway: HttpPaymentGateway, payment: PaymentPeer
) -> None:
    """A declined card is not a failure: the checkout stays PENDING (the user may retry)."""
    session = await gateway.create_checkout(new_booking_id(), PRICE, USER)
    payment.decline(session.session_id)
    assert (await gateway.verify(session.session_id, USER)).status is PaymentStatus.PENDING


async def test_a_200_failed_is_a_definitive_failure(
    gateway: HttpPaymentGateway, payment: PaymentPeer
) -> None:
    """Only a 200 body saying FAILED (an expired checkout) is FAILED."""
    session = await gateway.create_checkout(new_booking_id(), PRICE, USER)
    payment.expire(session.session_id)
    assert (await gateway.verify(session.session_id, USER)).status is PaymentStatus.FAILED


async def test_their_quiet_expiry_job_shows_as_failed(
    gateway: HttpPaymentGateway, payment: PaymentPeer
) -> None:
    """A PENDING payment failed by their own expiry job verifies FAILED (in a 200)."""
    session = await gateway.create_checkout(new_booking_id(), PRICE, USER)
    payment.pending_timeout(0)
    assert (await gateway.verify(session.session_id, USER)).status is PaymentStatus.FAILED


async def test_the_400_failed_trap_is_unknown(
    gateway: HttpPaymentGateway, payment: PaymentPeer
) -> None:
    """A 400 with paymentStatus FAILED (transient on their side) is UNKNOWN, never FAILED."""
    session = await gateway.create_checkout(new_booking_id(), PRICE, USER)
    payment.pay(session.session_id)
    payment.gateway_errors(1)
    trapped = await gateway.verify(session.session_id, USER)
    assert trapped.status is PaymentStatus.UNKNOWN
    assert trapped.booking_id is None
    assert (await gateway.verify(session.session_id, USER)).status is PaymentStatus.COMPLETED


async def test_an_unknown_session_is_unknown(gateway: HttpPaymentGateway) -> None:
    """A 404 NOT_FOUND verify answer is UNKNOWN, not a failure."""
    result = await gateway.verify("cs_test_never_created", USER)
    assert result.status is PaymentStatus.UNKNOWN
    assert result.session_id == "cs_test_never_created"


async def test_verify_retries_a_5xx(gateway: HttpPaymentGateway, payment: PaymentPeer) -> None:
    """A 503 on verify is retried and the next answer wins."""
    session = await gateway.create_checkout(new_booking_id(), PRICE, USER)
    payment.pay(session.session_id)
    payment.add_fault("status", VERIFY, status=503, times=1)
    assert (await gateway.verify(session.session_id, USER)).status is PaymentStatus.COMPLETED
    assert len(payment.requests(VERIFY)) == 2


async def test_verify_gives_up_after_the_bounded_attempts(
    gateway: HttpPaymentGateway, payment: PaymentPeer
) -> None:
    """A verify that always answers 500 is UNKNOWN after exactly the configured attempts."""
    session = await gateway.create_checkout(new_booking_id(), PRICE, USER)
    payment.add_fault("status", VERIFY, status=500)
    assert (await gateway.verify(session.session_id, USER)).status is PaymentStatus.UNKNOWN
    assert len(payment.requests(VERIFY)) == FAST_RETRY.attempts


async def test_verify_retries_past_a_slow_answer(
    gateway: HttpPaymentGateway, payment: PaymentPeer
) -> None:
    """An answer slower than the timeout is abandoned and asked again."""
    session = await gateway.create_checkout(new_booking_id(), PRICE, USER)
    payment.pay(session.session_id)
    payment.add_fault("delay", VERIFY, seconds=3.0, times=1)
    assert (await gateway.verify(session.session_id, USER)).status is PaymentStatus.COMPLETED


async def test_verify_timing_out_every_time_is_unknown(
    gateway: HttpPaymentGateway, payment: PaymentPeer
) -> None:
    """Latency beyond the timeout on every attempt is UNKNOWN."""
    session = await gateway.create_checkout(new_booking_id(), PRICE, USER)
    payment.add_fault("delay", VERIFY, seconds=3.0)
    assert (await gateway.verify(session.session_id, USER)).status is PaymentStatus.UNKNOWN


async def test_verify_retries_a_dropped_connection(
    gateway: HttpPaymentGateway, payment: PaymentPeer
) -> None:
    """A dropped connection on verify is transient: retried, then answered."""
    session = await gateway.create_checkout(new_booking_id(), PRICE, USER)
    payment.add_fault("drop", VERIFY, times=1)
    assert (await gateway.verify(session.session_id, USER)).status is PaymentStatus.PENDING


async def test_verify_reports_what_they_say_about_booking_and_amount(
    gateway: HttpPaymentGateway, payment: PaymentPeer
) -> None:
    """Verify reports the answer's booking id and amount as given, for the domain to check."""
    session = await gateway.create_checkout(new_booking_id(), PRICE, USER)
    payment.pay(session.session_id)
    payment.tamper(booking_id=99, amount=1.0)
    result = await gateway.verify(session.session_id, USER)
    assert (result.booking_id, result.amount) == (99, Money(100))


async def test_a_completed_without_booking_or_amount_is_not_evidence(
    gateway: HttpPaymentGateway, payment: PaymentPeer
) -> None:
    """A 200 COMPLETED with a null booking id or amount proves nothing: UNKNOWN."""
    payment.add_fault(
        "status",
        VERIFY,
        status=200,
        body={"paymentId": 1, "bookingId": None, "paymentStatus": "COMPLETED", "amount": None},
    )
    assert (await gateway.verify("cs_test_x", USER)).status is PaymentStatus.UNKNOWN


async def test_verify_of_an_unreadable_answer_is_unknown(
    gateway: HttpPaymentGateway, payment: PaymentPeer
) -> None:
    """A 200 whose body is not the PaymentResponse shape is UNKNOWN."""
    payment.add_fault("status", VERIFY, status=200, body=["not", "an", "object"])
    assert (await gateway.verify("cs_test_x", USER)).status is PaymentStatus.UNKNOWN


async def test_verify_against_a_closed_port_is_unknown() -> None:
    """Nobody listening: verify answers UNKNOWN without raising."""
    gw = HttpPaymentGateway(base_url=closed_port_url(), timeout=0.5, verify_retry=FAST_RETRY)
    try:
        assert (await gw.verify("cs_test_x", USER)).status is PaymentStatus.UNKNOWN
    finally:
        await gw.aclose()


async def test_ping(gateway: HttpPaymentGateway) -> None:
    """ping succeeds against a live Payment Service and fails loudly against a dead one."""
    await gateway.ping()
    dead = HttpPaymentGateway(base_url=closed_port_url(), timeout=0.5)
    try:
        with pytest.raises(PaymentUnavailable):
            await dead.ping()
    finally:
        await dead.aclose()


async def test_the_base_url_can_come_from_a_service_directory(payment: PaymentPeer) -> None:
    """With a directory, `payment-service` is resolved there; an unknown name is unavailable."""
    found = HttpPaymentGateway(directory=StaticServiceDirectory({"payment-service": payment.url}))
    lost = HttpPaymentGateway(directory=StaticServiceDirectory({}), verify_retry=FAST_RETRY)
    try:
        session = await found.create_checkout(new_booking_id(), PRICE, USER)
        assert (await found.verify(session.session_id, USER)).status is PaymentStatus.PENDING
        with pytest.raises(PaymentUnavailable):
            await lost.create_checkout(new_booking_id(), PRICE, USER)
        assert (await lost.verify(session.session_id, USER)).status is PaymentStatus.UNKNOWN
    finally:
        await found.aclose()
        await lost.aclose()


async def test_configured_return_urls_are_sent_and_the_checkout_page_uses_them(
    payment: PaymentPeer,
) -> None:
    """successUrl/cancelUrl go with create; paying on the checkout page returns to successUrl."""
    gw = HttpPaymentGateway(
        base_url=payment.url,
        timeout=0.5,
        success_url="https://shop.example/paid",
        cancel_url="https://shop.example/cancelled",
    )
    try:
        session = await gw.create_checkout(new_booking_id(), PRICE, USER)
    finally:
        await gw.aclose()
    [sent] = payment.requests(CREATE)
    assert sent["body"]["successUrl"] == "https://shop.example/paid"
    assert sent["body"]["cancelUrl"] == "https://shop.example/cancelled"
    assert payment.client.get(session.url).status_code == 200
    paid = payment.client.post(f"{session.url}/pay")
    assert (paid.status_code, paid.headers["location"]) == (303, "https://shop.example/paid")
    assert payment.session(session.session_id)["paymentStatus"] == "COMPLETED"
