"""The production wiring end to end: `booking serve` on PostgreSQL, Redis and Kafka, with the
Payment and Theater peer services, driven over a socket as the gateway would."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from booking.entrypoints.identity import mint_token
from booking.entrypoints.webhook import signature_header
from tests.support.kafka import KafkaBroker
from tests.support.peers import PaymentPeer, TheaterPeer

from .conftest import (
    BASE,
    SECRET,
    WEBHOOK_SECRET,
    BookingServer,
    Platform,
    consume_for,
    run_cli,
    token,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.kafka]

SUCCESS_TYPE = "com.bookticket.booking_service.dto.BookingSuccessEvent"
FAILED_TYPE = "com.bookticket.booking_service.dto.BookingFailedEvent"


def gateway(user_id: int = 7, roles: tuple[str, ...] = ("ROLE_USER",)) -> dict[str, str]:
    """What the gateway forwards: the JWT and the identity headers derived from it."""
    return {
        "Authorization": f"Bearer {token(user_id, roles)}",
        "X-User-Id": str(user_id),
        "X-User-Name": f"{user_id}_user",
        "X-User-Roles": ",".join(roles),
    }


NOTIFICATION = {"X-User-Roles": "ROLE_SERVICE_ACCOUNT"}


@pytest.fixture(scope="module")
async def platform(
    tmp_path_factory: pytest.TempPathFactory,
    e2e_database: str,
    e2e_broker: KafkaBroker,
    redis_url: str,
    payment_service: PaymentPeer,
    theater_service: TheaterPeer,
) -> AsyncIterator[Platform]:
    """`booking migrate` then `booking serve`, configured as a platform deployment."""
    workdir = tmp_path_factory.mktemp("platform")
    show_id = random.randint(10_000, 99_999)  # noqa: S311 - a show of this module alone
    theater_service.clear_faults()
    payment_service.clear_faults()
    theater_service.seed_grid(show_id, rows=3, columns=10, first_seat_id=show_id * 100 + 1)
    topic = f"payment_results.{uuid.uuid4().hex[:8]}"
    env = {
        "BOOKING_DATABASE_URL": e2e_database,
        "BOOKING_REDIS_URL": redis_url,
        "BOOKING_KAFKA_BOOTSTRAP_SERVERS": e2e_broker.bootstrap,
        "BOOKING_KAFKA_ENABLE_IDEMPOTENCE": "false",
        "BOOKING_PAYMENT_RESULTS_TOPIC": topic,
        "BOOKING_PAYMENT_SERVICE_URL": payment_service.url,
        "BOOKING_THEATER_SERVICE_URL": theater_service.url,
        "BOOKING_AUTH_MODE": "gateway+jwt",
        "BOOKING_JWT_SECRET": SECRET,
        "BOOKING_TRUSTED_SERVICE_NETWORKS": "127.0.0.0/8",
        "BOOKING_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "BOOKING_RELAY_INTERVAL_SECONDS": "0.1",
        "BOOKING_LOG_JSON": "true",
        "BOOKING_MAX_BODY_BYTES": "4096",
    }
    migrated = run_cli(["migrate"], env, workdir)
    assert migrated.returncode == 0, migrated.stderr
    assert "migrated" in migrated.stdout
    server = BookingServer(workdir, env)
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
            yield Platform(
                server,
                http,
                payment_service,
                theater_service,
                e2e_broker,
                e2e_database,
                show_id,
                topic,
                env,
            )
    finally:
        server.stop()
    assert server.stopped_cleanly(), server.log()[-3000:]


def seats(platform: Platform, *offsets: int) -> list[int]:
    """Show-seat ids of the module's show: offset 1 is row 1, column 1."""
    return [platform.show_id * 100 + o for o in offsets]


async def create(platform: Platform, seat_ids: list[int], user_id: int = 7, **headers: str) -> Any:
    return await platform.http.post(
        BASE,
        json={"showId": platform.show_id, "seatIds": seat_ids},
        headers=gateway(user_id) | headers,
    )


async def booked(platform: Platform, seat_ids: list[int], user_id: int = 7) -> dict[str, Any]:
    response = await create(platform, seat_ids, user_id)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def theater_statuses(platform: Platform, seat_ids: list[int], status: str) -> bool:
    found = platform.theater.seat_statuses(platform.show_id)
    return all(found[s] == status for s in seat_ids)


async def test_ready_with_every_dependency(platform: Platform) -> None:
    """/health/ready reports PostgreSQL, Redis, Kafka, Payment and Theater all UP."""
    response = await platform.http.get("/health/ready")
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert {name: c["status"] for name, c in checks.items()} == {
        "database": "UP",
        "redis": "UP",
        "kafka": "UP",
        "payment": "UP",
        "theater": "UP",
    }


async def test_pay_and_poll_confirms_books_and_notifies(platform: Platform) -> None:
    """create → pay → verify-payment: CONFIRMED, seats BOOKED at the Theater, one
    booking_success record as the Notification Service reads it, and its seats callback."""
    chosen = seats(platform, 11, 12)
    created = await booked(platform, chosen)
    booking_id = created["bookingId"]
    assert created["totalAmount"] == 500.0
    assert await theater_statuses(platform, chosen, "LOCKED")
    (session,) = platform.payment.sessions_for(booking_id)
    assert session["session_id"] == created["paymentSessionId"]

    platform.payment.pay(created["paymentSessionId"])
    verified = await platform.http.get(
        f"{BASE}/{booking_id}/verify-payment",
        params={"sessionId": created["paymentSessionId"]},
        headers=gateway(),
    )
    assert verified.status_code == 200, verified.text
    assert verified.json()["status"] == "CONFIRMED"

    await wait_for(
        lambda: theater_statuses(platform, chosen, "BOOKED"), what="seats BOOKED at the Theater"
    )
    records = await consume_for(platform.broker.bootstrap, ["booking_success"], {booking_id})
    assert len(records) == 1
    record = records[0]
    assert record.key == str(booking_id).encode()
    assert dict(record.headers)["__TypeId__"] == SUCCESS_TYPE.encode()
    value = json.loads(record.value)
    assert value["totalAmount"] == 500.0
    assert value["userId"] == 7

    callback = await platform.http.get(
        f"{BASE}/{booking_id}/seats",
        headers=NOTIFICATION | {"X-User-Id": "7", "X-User-Name": "7_null"},
    )
    assert callback.status_code == 200, callback.text
    assert callback.json() == [
        {"seatId": chosen[0], "seatNumber": "2-1", "seatType": "GOLD", "price": 250.0},
        {"seatId": chosen[1], "seatNumber": "2-2", "seatType": "GOLD", "price": 250.0},
    ]


async def test_expired_checkout_fails_releases_and_announces(platform: Platform) -> None:
    """A checkout the Payment Service reports FAILED: 402, seats AVAILABLE again, and one
    booking_failed record with the reason."""
    chosen = seats(platform, 1)
    created = await booked(platform, chosen)
    platform.payment.expire(created["paymentSessionId"])
    response = await platform.http.get(
        f"{BASE}/{created['bookingId']}/verify-payment", headers=gateway()
    )
    assert response.status_code == 402
    assert response.json()["errorCode"] == "PAYMENT_FAILED"
    await wait_for(lambda: theater_statuses(platform, chosen, "AVAILABLE"), what="seat released")
    records = await consume_for(
        platform.broker.bootstrap, ["booking_failed"], {created["bookingId"]}
    )
    assert len(records) == 1
    assert dict(records[0].headers)["__TypeId__"] == FAILED_TYPE.encode()
    assert json.loads(records[0].value)["reason"] == "PAYMENT_FAILED"


async def test_cancel_releases_at_the_theater(platform: Platform) -> None:
    """The owner cancels: CANCELLED, the Theater seats come back, another user books them."""
    chosen = seats(platform, 2, 3)
    created = await booked(platform, chosen)
    cancelled = await platform.http.post(f"{BASE}/{created['bookingId']}/cancel", headers=gateway())
    assert cancelled.json()["status"] == "CANCELLED"
    await wait_for(lambda: theater_statuses(platform, chosen, "AVAILABLE"), what="seats released")
    assert (await create(platform, chosen, user_id=8)).status_code == 201


async def test_signed_webhook_confirms(platform: Platform) -> None:
    """A result pushed by webhook confirms the booking; its replay is refused."""
    chosen = seats(platform, 21)
    created = await booked(platform, chosen)
    body = json.dumps(
        {
            "sessionId": created["paymentSessionId"],
            "bookingId": created["bookingId"],
            "amount": created["totalAmount"],
            "status": "COMPLETED",
        }
    ).encode()
    headers = {
        "Booking-Signature": signature_header(WEBHOOK_SECRET.encode(), body),
        "Content-Type": "application/json",
    }
    first = await platform.http.post("/api/v1/payments/webhook", content=body, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["bookingStatus"] == "CONFIRMED"
    replay = await platform.http.post("/api/v1/payments/webhook", content=body, headers=headers)
    assert replay.status_code == 409
    await wait_for(lambda: theater_statuses(platform, chosen, "BOOKED"), what="seat BOOKED")


async def test_payment_result_topic_confirms(platform: Platform) -> None:
    """A result published on the payment-results topic confirms the booking."""
    created = await booked(platform, seats(platform, 22))
    producer = AIOKafkaProducer(
        bootstrap_servers=platform.broker.bootstrap, enable_idempotence=False, acks="all"
    )
    await producer.start()
    try:
        value = {
            "sessionId": created["paymentSessionId"],
            "bookingId": created["bookingId"],
            "amount": created["totalAmount"],
            "status": "COMPLETED",
        }
        await producer.send_and_wait(
            platform.results_topic,
            json.dumps(value).encode(),
            key=str(created["bookingId"]).encode(),
        )
    finally:
        await producer.stop()

    async def confirmed() -> bool:
        response = await platform.http.get(f"{BASE}/{created['bookingId']}", headers=gateway())
        return bool(response.json()["status"] == "CONFIRMED")

    await wait_for(confirmed, attempts=300, what="booking confirmed from the topic")


async def test_taken_seats_conflict_with_their_ids(platform: Platform) -> None:
    """A seat held by another booking, or BOOKED at the Theater: 409 naming exactly it."""
    held = seats(platform, 4)
    await booked(platform, held)
    response = await create(platform, [*seats(platform, 5), *held], user_id=8)
    assert response.status_code == 409
    assert response.json()["errorCode"] == "SEAT_LOCK_CONFLICT"
    assert response.json()["seatIds"] == held
    sold = seats(platform, 6)
    platform.theater.set_status(platform.show_id, sold[0], "BOOKED")
    response = await create(platform, [*seats(platform, 7), *sold], user_id=8)
    assert response.status_code == 409
    assert response.json()["seatIds"] == sold
    assert await theater_statuses(platform, seats(platform, 5, 7), "AVAILABLE")


async def test_input_errors_over_the_wire(platform: Platform) -> None:
    """Bad bodies, ids and sizes answer 400/404/413/422 problem documents over the socket."""
    cases = [
        ("POST", BASE, b"{", 400),
        ("POST", BASE, json.dumps({"showId": platform.show_id, "seatIds": []}).encode(), 422),
        ("POST", BASE, json.dumps({"showId": platform.show_id, "seatIds": ["1"]}).encode(), 422),
        ("POST", BASE, json.dumps({"showId": 1, "seatIds": [1], "x": "y" * 5000}).encode(), 413),
        ("GET", f"{BASE}/abc", b"", 400),
        ("GET", f"{BASE}/123456789", b"", 404),
    ]
    for method, path, body, status in cases:
        response = await platform.http.request(
            method, path, content=body, headers=gateway() | {"Content-Type": "application/json"}
        )
        assert response.status_code == status, (path, body[:40], response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "Traceback" not in response.text


async def test_foreign_booking_is_404(platform: Platform) -> None:
    """Another user's booking answers 404 on every route."""
    created = await booked(platform, seats(platform, 8))
    for method, suffix in (
        ("GET", ""),
        ("GET", "/seats"),
        ("GET", "/verify-payment"),
        ("POST", "/cancel"),
    ):
        response = await platform.http.request(
            method, f"{BASE}/{created['bookingId']}{suffix}", headers=gateway(9)
        )
        assert response.status_code == 404, suffix


async def test_idempotency_over_the_wire(platform: Platform) -> None:
    """Same key and body: one booking, one checkout; same key, other body: 422."""
    key = {"Idempotency-Key": f"e2e-{uuid.uuid4()}"}
    first = await create(platform, seats(platform, 9), **key)
    again = await create(platform, seats(platform, 9), **key)
    assert first.status_code == again.status_code == 201
    assert again.json()["bookingId"] == first.json()["bookingId"]
    assert len(platform.payment.sessions_for(first.json()["bookingId"])) == 1
    other = await create(platform, seats(platform, 10), **key)
    assert other.status_code == 422
    assert other.json()["errorCode"] == "IDEMPOTENCY_KEY_REUSED"


async def test_identity_is_verified(platform: Platform) -> None:
    """gateway+jwt over the wire: no token, an expired one, or forged roles are 401."""
    expired = mint_token(SECRET, 7, ttl=timedelta(hours=-1))
    forged = gateway() | {"X-User-Roles": "ROLE_USER,ROLE_ADMIN"}
    for headers in (
        {},
        {"Authorization": f"Bearer {expired}"},
        forged,
        {"Authorization": "Bearer garbage"},
    ):
        response = await platform.http.get(BASE, headers=headers)
        assert response.status_code == 401, headers


async def test_payment_outage_is_503_with_retry_after(platform: Platform) -> None:
    """The Payment Service failing on create: 503 + Retry-After; the seats come back."""
    chosen = seats(platform, 23)
    platform.payment.add_fault("status", "/checkout/create", status=500, times=5)
    try:
        response = await create(platform, chosen)
    finally:
        platform.payment.clear_faults()
    assert response.status_code == 503, response.text
    assert response.json()["errorCode"] == "DEPENDENCY_UNAVAILABLE"
    assert int(response.headers["retry-after"]) > 0
    await wait_for(lambda: theater_statuses(platform, chosen, "AVAILABLE"), what="seat released")
    assert (await create(platform, chosen)).status_code == 201


async def test_metrics_and_json_logs(platform: Platform) -> None:
    """Prometheus counters move, and every log line is JSON carrying the request id."""
    text = (await platform.http.get("/metrics")).text
    assert 'booking_outcomes_total{outcome="confirmed"' in text
    assert "booking_peer_call_duration_seconds_bucket" in text
    await platform.http.get("/health/live", headers={"X-Request-ID": "e2e-trace-1"})

    async def logged() -> bool:
        return "e2e-trace-1" in platform.server.log()

    await wait_for(logged, what="the access log line")
    line = next(ln for ln in platform.server.log().splitlines() if "e2e-trace-1" in ln)
    assert json.loads(line)["request_id"] == "e2e-trace-1"
