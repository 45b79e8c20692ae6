"""The saga on PostgreSQL with the outbox relayed to a real broker that goes away and returns."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.adapters.kafka.publisher import KafkaEventPublisher
from booking.adapters.sql.outbox import SqlOutboxStore
from booking.adapters.sql.uow import SqlUnitOfWorkFactory
from booking.application.messages import TOPIC_SUCCESS
from booking.application.relay import ActionRunner, OutboxRelay
from booking.domain.booking import BookingStatus, PaymentStatus
from tests.support.harness import SHOW_ID, Harness, small_hall
from tests.support.kafka import KafkaBroker, read_records
from tests.support.postgres import clear_tables

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


@dataclass
class Stack:
    h: Harness
    relay: OutboxRelay
    publisher: KafkaEventPublisher
    broker: KafkaBroker


@pytest.fixture
async def stack(
    postgres_engine: AsyncEngine, private_kafka_broker: KafkaBroker
) -> AsyncIterator[Stack]:
    await clear_tables(postgres_engine)
    # The saga's use cases and relay on PostgreSQL; seats and payment stay in-process.
    uow = SqlUnitOfWorkFactory(postgres_engine)
    h = Harness(uow_factory=uow)
    h.theater.add_show(SHOW_ID, small_hall(10))
    publisher = KafkaEventPublisher(
        private_kafka_broker.bootstrap, enable_idempotence=False, request_timeout=2.0
    )
    relay = OutboxRelay(
        SqlOutboxStore(postgres_engine),
        publisher,
        ActionRunner(uow, h.theater, h.locks, h.payment, h.apply),
        h.clock,
        h.settings,
        h.relay._telemetry,
        owner="relay-pg",
    )
    try:
        yield Stack(h, relay, publisher, private_kafka_broker)
    finally:
        await publisher.close()


async def confirm(stack: Stack, user: int, seat: int) -> int:
    h = stack.h
    booking = await h.create(h.user(user), SHOW_ID, [seat])
    assert booking.payment is not None
    result = h.payment.settle(booking.payment.session_id, PaymentStatus.COMPLETED)
    confirmed = await h.apply(result, booking_id=booking.booking_id, actor="test")
    assert confirmed.status is BookingStatus.CONFIRMED
    return booking.booking_id


async def test_bookings_confirm_while_the_broker_is_away_and_events_arrive_once(
    stack: Stack,
) -> None:
    """Broker stopped: bookings still confirm and their events wait in the outbox; broker
    back: each event arrives exactly once, keyed by its booking, with its type header."""
    stack.broker.stop()
    ids = [await confirm(stack, user, 100 + user) for user in range(1, 5)]
    await stack.relay.run_once()
    stats = await stack.relay._store.stats()
    assert stats.pending == len(ids)  # the Theater bookings went out; the events wait
    assert stats.failing >= 1

    stack.broker.start()
    stack.h.clock.advance(stack.h.settings.retry_max * 2)
    for _ in range(20):
        await stack.relay.run_once()
        if (await stack.relay._store.stats()).pending == 0:
            break
        stack.h.clock.advance(stack.h.settings.retry_max * 2)
    assert (await stack.relay._store.stats()).pending == 0
    await stack.relay.drain()  # nothing is sent twice by more rounds

    records = await read_records(
        stack.broker.bootstrap, [TOPIC_SUCCESS], group_id="notification-group", expected=4
    )
    assert sorted(json.loads(r.value)["bookingId"] for r in records) == sorted(ids)
    for record in records:
        headers = dict(record.headers)
        assert headers["__TypeId__"].endswith(b"BookingSuccessEvent")
        assert record.key == str(json.loads(record.value)["bookingId"]).encode()
