"""KafkaEventPublisher against a real broker, read back as the Notification Service does."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest

from booking.adapters.kafka.publisher import KafkaEventPublisher
from booking.ports.errors import PublishFailed
from booking.ports.outbox import JSON, MessageKind, OutboxMessage
from tests.support.kafka import KafkaBroker, read_records

pytestmark = pytest.mark.kafka

SUCCESS_TYPE = "com.bookticket.booking_service.dto.BookingSuccessEvent"
FAILED_TYPE = "com.bookticket.booking_service.dto.BookingFailedEvent"


def unique(topic: str) -> str:
    """A topic name of this test alone: the session broker is shared by every test."""
    return f"{topic}.{uuid.uuid4().hex[:10]}"


def event(topic: str, booking_id: int, type_id: str, **extra: JSON) -> OutboxMessage:
    payload: dict[str, JSON] = {
        "bookingId": booking_id,
        "userId": 7,
        "showId": 12,
        "totalAmount": 500.0,
        "eventId": str(uuid.uuid4()),
        "occurredAt": "2026-01-01T12:00:00Z",
        "schemaVersion": 1,
        **extra,
    }
    return OutboxMessage(
        message_id=str(payload["eventId"]),
        booking_id=booking_id,
        kind=MessageKind.EVENT,
        name=topic,
        payload=payload,
        headers={"__TypeId__": type_id},
    )


@pytest.fixture
async def publisher(kafka_broker: KafkaBroker) -> AsyncIterator[KafkaEventPublisher]:
    pub = KafkaEventPublisher(kafka_broker.bootstrap, enable_idempotence=False)
    yield pub
    await pub.close()


async def test_notification_group_reads_exactly_the_published_records(
    kafka_broker: KafkaBroker, publisher: KafkaEventPublisher
) -> None:
    """Each published event is one record with the booking id as key, the `__TypeId__` header
    and the payload as JSON; one booking's events arrive in publish order."""
    success, failed = unique("booking_success"), unique("booking_failed")
    sent = [
        event(success, 42, SUCCESS_TYPE),
        event(failed, 43, FAILED_TYPE, reason="PAYMENT_FAILED"),
        event(success, 44, SUCCESS_TYPE),
        event(failed, 42, FAILED_TYPE, reason="late"),
    ]
    for message in sent:
        await publisher.publish(message)

    records = await read_records(
        kafka_broker.bootstrap, [success, failed], group_id="notification-group", expected=4
    )

    assert len(records) == 4
    by_event = {json.loads(r.value)["eventId"]: r for r in records}
    assert set(by_event) == {m.message_id for m in sent}
    for message in sent:
        record = by_event[message.message_id]
        assert record.topic == message.name
        assert record.key == str(message.booking_id).encode()
        assert dict(record.headers) == {"__TypeId__": message.headers["__TypeId__"].encode()}
        assert json.loads(record.value.decode("utf-8")) == dict(message.payload)
        assert b" " not in record.value  # compact JSON
    first, last = by_event[sent[0].message_id], by_event[sent[3].message_id]
    assert (first.topic, last.topic) == (success, failed)


async def test_one_bookings_events_keep_their_order(
    kafka_broker: KafkaBroker, publisher: KafkaEventPublisher
) -> None:
    """Events of one booking land in one partition in the order they were published."""
    topic = unique("booking_success")
    sent = [event(topic, 77, SUCCESS_TYPE, seq=i) for i in range(10)]
    for message in sent:
        await publisher.publish(message)

    records = await read_records(
        kafka_broker.bootstrap, [topic], group_id="notification-group", expected=10
    )

    assert len({r.partition for r in records}) == 1
    assert [json.loads(r.value)["seq"] for r in records] == list(range(10))


async def test_non_ascii_payload_is_utf8_json(
    kafka_broker: KafkaBroker, publisher: KafkaEventPublisher
) -> None:
    """Text outside ASCII goes out as UTF-8 JSON and reads back unchanged."""
    topic = unique("booking_failed")
    message = event(topic, 5, FAILED_TYPE, reason="सीट उपलब्ध नहीं — déjà pris")
    await publisher.publish(message)
    [record] = await read_records(
        kafka_broker.bootstrap, [topic], group_id="notification-group", expected=1
    )
    assert json.loads(record.value.decode("utf-8"))["reason"] == message.payload["reason"]


async def test_ping_answers_while_the_broker_runs(publisher: KafkaEventPublisher) -> None:
    """ping starts the producer and returns when a broker answers metadata."""
    await publisher.ping()
    assert publisher.started


async def test_publish_after_close_fails(kafka_broker: KafkaBroker) -> None:
    """A closed publisher refuses to publish with PublishFailed."""
    pub = KafkaEventPublisher(kafka_broker.bootstrap, enable_idempotence=False)
    await pub.close()
    with pytest.raises(PublishFailed):
        await pub.publish(event(unique("booking_success"), 1, SUCCESS_TYPE))


async def test_broker_refusing_idempotence_gives_publish_failed(kafka_broker: KafkaBroker) -> None:
    """The default (idempotent) producer against a broker that refuses it ends in PublishFailed,
    not in a hang or a library error."""
    pub = KafkaEventPublisher(kafka_broker.bootstrap, request_timeout=3.0)
    try:
        with pytest.raises(PublishFailed):
            await pub.publish(event(unique("booking_success"), 1, SUCCESS_TYPE))
    finally:
        await pub.close()


async def test_unreachable_broker_gives_publish_failed(private_kafka_broker: KafkaBroker) -> None:
    """With no broker at the address, publish and ping raise PublishFailed (no producer left)."""
    private_kafka_broker.stop()
    pub = KafkaEventPublisher(
        private_kafka_broker.bootstrap, enable_idempotence=False, request_timeout=2.0
    )
    try:
        with pytest.raises(PublishFailed):
            await pub.publish(event(unique("booking_success"), 1, SUCCESS_TYPE))
        with pytest.raises(PublishFailed):
            await pub.ping()
        assert not pub.started
    finally:
        await pub.close()


async def test_publish_fails_while_broker_is_down_and_works_after_restart(
    private_kafka_broker: KafkaBroker,
) -> None:
    """Broker killed: publish raises PublishFailed within its bounds. Broker back (same port,
    empty): the same publisher delivers again, and only the records acknowledged after the
    restart are there."""
    broker = private_kafka_broker
    pub = KafkaEventPublisher(broker.bootstrap, enable_idempotence=False, request_timeout=2.0)
    topic = "booking_success"
    try:
        await pub.publish(event(topic, 1, SUCCESS_TYPE))
        broker.stop()
        with pytest.raises(PublishFailed):
            await pub.publish(event(topic, 2, SUCCESS_TYPE))
        with pytest.raises(PublishFailed):
            await pub.ping()

        broker.start()
        delivered = event(topic, 3, SUCCESS_TYPE)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:  # the relay's loop, in small: try again later with the same event
            try:
                await pub.publish(delivered)
                break
            except PublishFailed:
                assert loop.time() < deadline, "publishing never worked again after the restart"
                await asyncio.sleep(0.2)
        await pub.ping()
    finally:
        await pub.close()

    records = await read_records(
        broker.bootstrap, [topic], group_id="notification-group", expected=1
    )
    assert [json.loads(r.value)["eventId"] for r in records] == [delivered.message_id]
