"""The Notification Service's view of the swap: it reads `booking_success` / `booking_failed` as
group `notification-group`, drops records without `__TypeId__`, and for every success calls back
`GET /api/v1/bookings/{id}/seats` with service-account headers. Every confirmed booking's
customer must get ticket data, exactly once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.support.kafka import FAST_GROUP

from .conftest import BASE, Platform
from .test_platform import booked, gateway, platform, seats  # noqa: F401 - the fixture

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.kafka]


class NotificationService:
    """What the platform's Notification Service does with our events."""

    def __init__(self, bootstrap: str, http: httpx.AsyncClient) -> None:
        self.bootstrap = bootstrap
        self.http = http
        self.tickets: dict[int, list[Any]] = {}
        self.failures: dict[int, str] = {}
        self.dropped = 0
        self.callbacks = 0

    async def run_until(self, confirmed: set[int], failed: set[int], wait: float = 30.0) -> None:
        consumer = AIOKafkaConsumer(
            "booking_success",
            "booking_failed",
            bootstrap_servers=self.bootstrap,
            group_id="notification-group",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **FAST_GROUP,
        )
        await consumer.start()
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            while loop.time() < deadline:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for record in records:
                        await self.handle(record)
                await consumer.commit()
                if set(self.tickets) >= confirmed and set(self.failures) >= failed:
                    break
        finally:
            await consumer.stop()

    async def handle(self, record: Any) -> None:
        headers = dict(record.headers or [])
        if "__TypeId__" not in headers:
            self.dropped += 1
            return
        event = json.loads(record.value)
        booking_id = event["bookingId"]
        if record.topic == "booking_failed":
            self.failures[booking_id] = event["reason"]
            return
        self.callbacks += 1
        response = await self.http.get(
            f"{BASE}/{booking_id}/seats",
            headers={
                "X-User-Id": str(event["userId"]),
                "X-User-Name": f"{event['userId']}_null",
                "X-User-Roles": "ROLE_SERVICE_ACCOUNT",
            },
        )
        assert response.status_code == 200, response.text
        assert booking_id not in self.tickets, f"booking {booking_id} announced twice"
        self.tickets[booking_id] = response.json()


async def test_every_confirmed_booking_gets_its_ticket_once(platform: Platform) -> None:  # noqa: F811
    """Paid bookings are announced once with their seats; declined ones once as failed;
    a record without `__TypeId__` is dropped by the consumer, as the real one does."""
    confirmed: set[int] = set()
    failed: set[int] = set()
    expected_seats: dict[int, list[int]] = {}
    for index in range(6):
        chosen = seats(platform, 21 + index)
        created = await booked(platform, chosen, user_id=40 + index)
        booking_id = created["bookingId"]
        expected_seats[booking_id] = chosen
        if index % 3 == 2:
            platform.payment.expire(created["paymentSessionId"])
            failed.add(booking_id)
        else:
            platform.payment.pay(created["paymentSessionId"])
            confirmed.add(booking_id)
        answer = await platform.http.get(
            f"{BASE}/{booking_id}/verify-payment", headers=gateway(40 + index)
        )
        assert answer.status_code in (200, 402), answer.text

    producer = AIOKafkaProducer(bootstrap_servers=platform.broker.bootstrap)
    await producer.start()
    try:
        stray = json.dumps({"bookingId": 1, "userId": 1, "showId": 1, "totalAmount": 1.0})
        await producer.send_and_wait("booking_success", stray.encode(), key=b"1")
    finally:
        await producer.stop()

    notifications = NotificationService(platform.broker.bootstrap, platform.http)
    await notifications.run_until(confirmed, failed)
    mine = {b: t for b, t in notifications.tickets.items() if b in expected_seats}
    assert set(mine) == confirmed
    for booking_id, ticket in mine.items():
        assert [s["seatId"] for s in ticket] == expected_seats[booking_id]
        assert set(ticket[0]) == {"seatId", "seatNumber", "seatType", "price"}
    assert {b for b in notifications.failures if b in expected_seats} == failed
    assert notifications.dropped >= 1
    assert 1 not in notifications.tickets
