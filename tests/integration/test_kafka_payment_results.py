"""KafkaPaymentResultConsumer against a real broker: delivery, commits after handling, retries."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from booking.adapters.kafka.payment_results import (
    KafkaPaymentResultConsumer,
    UndecodableRecord,
    decode_payment_result,
)
from booking.domain.booking import PaymentResult, PaymentStatus
from booking.domain.money import Money
from booking.ports.errors import DatabaseUnavailable
from tests.support.kafka import FAST_GROUP, KafkaBroker

pytestmark = pytest.mark.kafka

KEY = b"payments"  # one key: every record of a test lands in one partition, in order


def result_json(
    session: str, status: str = "COMPLETED", booking: int = 42, amount: Any = 500.5
) -> bytes:
    body = {"sessionId": session, "bookingId": booking, "amount": amount, "status": status}
    return json.dumps(body).encode()


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> TopicPartition:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        sent = [await producer.send_and_wait(topic, value, key=KEY) for value in values]
    finally:
        await producer.stop()
    assert len({m.partition for m in sent}) == 1
    return TopicPartition(topic, sent[0].partition)


async def committed(bootstrap: str, group: str, partition: TopicPartition) -> int | None:
    """The group's committed offset of one partition, read by a non-member."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await reader.start()
    try:
        offset: int | None = await reader.committed(partition)
        return offset
    finally:
        await reader.stop()


async def eventually(
    check: Callable[[], Awaitable[bool] | bool], what: str, limit: float = 20.0
) -> None:
    """Poll `check` until it holds; fails after `limit` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        outcome = check()
        if outcome if isinstance(outcome, bool) else await outcome:
            return
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


class Recorder:
    """A handler that records every result it is given; `script` may act on a call first."""

    def __init__(
        self, script: Callable[[int, PaymentResult], Awaitable[None]] | None = None
    ) -> None:
        self.results: list[PaymentResult] = []
        self._script = script

    async def __call__(self, result: PaymentResult) -> None:
        call = len(self.results)
        self.results.append(result)
        if self._script is not None:
            await self._script(call, result)

    @property
    def sessions(self) -> list[str]:
        return [r.session_id for r in self.results]


@pytest.fixture
def topic() -> str:
    return f"payment_results.{uuid.uuid4().hex[:10]}"


@pytest.fixture
def group() -> str:
    return f"booking-payment-results.{uuid.uuid4().hex[:10]}"


def make_consumer(
    bootstrap: str, topic: str, group: str, handler: Recorder
) -> KafkaPaymentResultConsumer:
    return KafkaPaymentResultConsumer(
        bootstrap,
        topic,
        handler,
        group_id=group,
        retry_backoff=0.05,
        max_retry_backoff=0.2,
        poll_timeout=0.1,
        request_timeout=5.0,
        session_timeout=FAST_GROUP["session_timeout_ms"] / 1000,
        heartbeat_interval=FAST_GROUP["heartbeat_interval_ms"] / 1000,
    )


@asynccontextmanager
async def running(consumer: KafkaPaymentResultConsumer) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(consumer.run())
    try:
        yield task
    finally:
        await consumer.stop(grace=5.0)
        assert task.done()


async def test_results_reach_the_handler_decoded_and_are_committed(
    kafka_broker: KafkaBroker, topic: str, group: str
) -> None:
    """Each record becomes one PaymentResult (rupees → paise); the offset after the last
    handled record is committed."""
    partition = await produce(
        kafka_broker.bootstrap,
        topic,
        [
            result_json("cs_1", "COMPLETED", 42, 500.5),
            result_json("cs_2", "FAILED", 43, 250),
            result_json("cs_3", "PENDING", 44, None),
        ],
    )
    handler = Recorder()
    consumer = make_consumer(kafka_broker.bootstrap, topic, group, handler)
    async with running(consumer):
        await eventually(lambda: len(handler.results) == 3, "three results")
        await eventually(
            lambda: _equals(committed(kafka_broker.bootstrap, group, partition), 3), "commit"
        )
    assert handler.results == [
        PaymentResult("cs_1", PaymentStatus.COMPLETED, 42, Money(50050)),
        PaymentResult("cs_2", PaymentStatus.FAILED, 43, Money(25000)),
        PaymentResult("cs_3", PaymentStatus.PENDING, 44, None),
    ]
    assert consumer.handled == 3


async def _equals(value: Awaitable[int | None], expected: int) -> bool:
    return await value == expected


async def test_offset_is_committed_only_after_the_handler_returns(
    kafka_broker: KafkaBroker, topic: str, group: str
) -> None:
    """While the handler is still working on a record its offset stays uncommitted."""
    partition = await produce(kafka_broker.bootstrap, topic, [result_json("cs_slow")])
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(_call: int, _result: PaymentResult) -> None:
        entered.set()
        await release.wait()

    handler = Recorder(slow)
    async with running(make_consumer(kafka_broker.bootstrap, topic, group, handler)):
        await eventually(entered.is_set, "the handler to start")
        assert await committed(kafka_broker.bootstrap, group, partition) is None
        release.set()
        await eventually(
            lambda: _equals(committed(kafka_broker.bootstrap, group, partition), 1), "commit"
        )


async def test_record_in_hand_at_a_crash_is_delivered_again(
    kafka_broker: KafkaBroker, topic: str, group: str
) -> None:
    """A consumer killed inside the handler leaves that record uncommitted: the next consumer
    of the group gets it, and not the one handled before it."""
    await produce(kafka_broker.bootstrap, topic, [result_json("cs_a"), result_json("cs_b")])
    stuck = asyncio.Event()

    async def hang_on_second(call: int, _result: PaymentResult) -> None:
        if call == 1:
            stuck.set()
            await asyncio.Event().wait()  # never returns: the task is cancelled

    first = Recorder(hang_on_second)
    consumer = make_consumer(kafka_broker.bootstrap, topic, group, first)
    task = asyncio.create_task(consumer.run())
    await eventually(stuck.is_set, "the handler to hang")
    await consumer.stop(grace=0.1)  # grace runs out: the task is cancelled mid-handler
    assert task.done()
    assert first.sessions == ["cs_a", "cs_b"]

    second = Recorder()
    async with running(make_consumer(kafka_broker.bootstrap, topic, group, second)):
        await eventually(lambda: len(second.results) >= 1, "the redelivery")
        await asyncio.sleep(0.3)
    assert second.sessions == ["cs_b"]


async def test_transient_handler_failure_retries_the_same_record_in_order(
    kafka_broker: KafkaBroker, topic: str, group: str
) -> None:
    """DependencyUnavailable from the handler: the same record comes again after a backoff,
    and the next record waits until it was handled."""
    await produce(kafka_broker.bootstrap, topic, [result_json("cs_1"), result_json("cs_2")])

    async def db_down_twice(call: int, _result: PaymentResult) -> None:
        if call < 2:
            raise DatabaseUnavailable("database is restarting")

    handler = Recorder(db_down_twice)
    consumer = make_consumer(kafka_broker.bootstrap, topic, group, handler)
    async with running(consumer):
        await eventually(lambda: len(handler.results) == 4, "the retries")
        await asyncio.sleep(0.3)
    assert handler.sessions == ["cs_1", "cs_1", "cs_1", "cs_2"]
    assert consumer.handled == 2


async def test_restarted_consumer_sees_only_new_records(
    kafka_broker: KafkaBroker, topic: str, group: str
) -> None:
    """A new consumer in the same group starts after the records the first one handled."""
    await produce(kafka_broker.bootstrap, topic, [result_json("cs_1"), result_json("cs_2")])
    first = Recorder()
    async with running(make_consumer(kafka_broker.bootstrap, topic, group, first)):
        await eventually(lambda: len(first.results) == 2, "the first two")
    await produce(kafka_broker.bootstrap, topic, [result_json("cs_3")])

    second = Recorder()
    async with running(make_consumer(kafka_broker.bootstrap, topic, group, second)):
        await eventually(lambda: len(second.results) >= 1, "the new record")
        await asyncio.sleep(0.3)
    assert first.sessions == ["cs_1", "cs_2"]
    assert second.sessions == ["cs_3"]


async def test_undecodable_records_are_skipped_and_committed(
    kafka_broker: KafkaBroker, topic: str, group: str
) -> None:
    """Bad JSON and records that are not payment results never reach the handler, and the
    group's offset moves past them."""
    bad = [
        b"not json at all",
        b'{"sessionId": "cs_x"}',
        result_json("cs_x", "REFUNDED"),
        result_json("cs_x", "COMPLETED", amount=-5),
        result_json("cs_x", "COMPLETED", booking=True),
        result_json("", "COMPLETED"),
        b"[1, 2]",
    ]
    partition = await produce(kafka_broker.bootstrap, topic, [*bad, result_json("cs_ok")])
    handler = Recorder()
    consumer = make_consumer(kafka_broker.bootstrap, topic, group, handler)
    async with running(consumer):
        await eventually(lambda: len(handler.results) == 1, "the good record")
        await eventually(
            lambda: _equals(committed(kafka_broker.bootstrap, group, partition), len(bad) + 1),
            "commit past the bad records",
        )
    assert handler.sessions == ["cs_ok"]
    assert consumer.skipped == len(bad)


async def test_repeated_result_reaches_the_handler_once(
    kafka_broker: KafkaBroker, topic: str, group: str
) -> None:
    """The same (session, status) twice is handled once; another status of it is handled."""
    await produce(
        kafka_broker.bootstrap,
        topic,
        [
            result_json("cs_1", "PENDING"),
            result_json("cs_1", "PENDING"),
            result_json("cs_1", "COMPLETED"),
        ],
    )
    handler = Recorder()
    consumer = make_consumer(kafka_broker.bootstrap, topic, group, handler)
    async with running(consumer):
        await eventually(lambda: consumer.handled + consumer.skipped == 3, "three records")
    assert [r.status for r in handler.results] == [PaymentStatus.PENDING, PaymentStatus.COMPLETED]


async def test_handler_bug_skips_the_record_and_goes_on(
    kafka_broker: KafkaBroker, topic: str, group: str
) -> None:
    """An unexpected handler error is logged and the record skipped, so the partition moves on."""
    partition = await produce(
        kafka_broker.bootstrap, topic, [result_json("cs_1"), result_json("cs_2")]
    )

    async def bug_on_first(call: int, _result: PaymentResult) -> None:
        if call == 0:
            raise RuntimeError("a bug")

    handler = Recorder(bug_on_first)
    async with running(make_consumer(kafka_broker.bootstrap, topic, group, handler)):
        await eventually(lambda: len(handler.results) == 2, "both records")
        await eventually(
            lambda: _equals(committed(kafka_broker.bootstrap, group, partition), 2), "commit"
        )
    assert handler.sessions == ["cs_1", "cs_2"]


async def test_consumer_waits_for_a_broker_that_starts_later(
    private_kafka_broker: KafkaBroker, topic: str, group: str
) -> None:
    """Started while the broker is down, the consumer keeps trying and consumes once it is up."""
    private_kafka_broker.stop()
    handler = Recorder()
    async with running(make_consumer(private_kafka_broker.bootstrap, topic, group, handler)):
        await asyncio.sleep(0.3)
        private_kafka_broker.start()
        await produce(private_kafka_broker.bootstrap, topic, [result_json("cs_late")])
        await eventually(lambda: len(handler.results) == 1, "the record", limit=30)
    assert handler.sessions == ["cs_late"]


async def test_stop_before_the_run_began_ends_it(
    kafka_broker: KafkaBroker, topic: str, group: str
) -> None:
    """A stop() issued right after the task was created (before it ran) still ends the run."""
    consumer = make_consumer(kafka_broker.bootstrap, topic, group, Recorder())
    task = asyncio.create_task(consumer.run())
    await consumer.stop(grace=5.0)
    await asyncio.wait({task}, timeout=10)
    assert task.done()
    assert not task.cancelled()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            b'{"sessionId":"cs","bookingId":42,"amount":500.0,"status":"COMPLETED","extra":1}',
            PaymentResult("cs", PaymentStatus.COMPLETED, 42, Money(50000)),
        ),
        (
            b'{"sessionId":"cs","bookingId":null,"amount":null,"status":"failed"}',
            PaymentResult("cs", PaymentStatus.FAILED, None, None),
        ),
        (
            b'{"sessionId":"cs","status":"PENDING","amount":0.015}',
            PaymentResult("cs", PaymentStatus.PENDING, None, Money(2)),
        ),
    ],
)
def test_decode_accepts_the_wire_shape(value: bytes, expected: PaymentResult) -> None:
    """Unknown fields are ignored, ids and amounts may be null, status case does not matter,
    and rupees round half up to paise."""
    assert decode_payment_result(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"{",
        b'{"status":"COMPLETED"}',
        b'{"sessionId":"cs","status":"UNKNOWN"}',
        b'{"sessionId":"cs","status":"COMPLETED","amount":"NaN"}',
    ],
)
def test_decode_refuses_what_is_not_a_payment_result(value: bytes | None) -> None:
    """Missing fields, an unknown status (UNKNOWN included) or a non-finite amount are refused."""
    with pytest.raises(UndecodableRecord):
        decode_payment_result(value)
