"""Kafka event publisher: one outbox event → one acknowledged record (acks=all)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from booking.ports.errors import PublishFailed
from booking.ports.outbox import OutboxMessage

log = logging.getLogger(__name__)


class KafkaEventPublisher:
    """`EventPublisher` on aiokafka.

    - `publish` sends to topic `message.name`, key = the booking id as decimal text (one
      booking's events stay in one partition, in order), value = `message.payload` as compact
      UTF-8 JSON, headers = `message.headers` (e.g. `__TypeId__`), and returns once the broker
      acknowledged the record with `acks="all"`.
    - Every broker error or timeout raises `PublishFailed`; the call is bounded by about twice
      `request_timeout` (metadata wait, then delivery). A record may still have been written
      when a timeout is reported: the relay republishes with the same `eventId`
      (at-least-once).
    - The producer starts on first use. When the broker goes away the producer reconnects by
      itself; after a non-retriable error it is dropped and a fresh one starts on the next call.
    - `linger_ms` is small because each publish awaits its acknowledgement: a longer linger only
      batches concurrent publishes and delays a sequential relay by that much per event.
    - `enable_idempotence` is on by default (Kafka's own duplicate filter on producer retries);
      brokers that refuse it (the Tansu test broker) need it off.
    """

    def __init__(
        self,
        bootstrap_servers: str | list[str],
        *,
        enable_idempotence: bool = True,
        client_id: str = "booking-service",
        linger_ms: int = 1,
        request_timeout: float = 10.0,
    ) -> None:
        if request_timeout <= 0:
            raise ValueError("request_timeout must be positive")
        self._bootstrap = bootstrap_servers
        self._idempotence = enable_idempotence
        self._client_id = client_id
        self._linger_ms = linger_ms
        self._request_timeout = request_timeout
        self._producer: Any = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def started(self) -> bool:
        return self._producer is not None

    async def publish(self, message: OutboxMessage) -> None:
        value = msgspec.json.encode(dict(message.payload))
        key = str(message.booking_id).encode()
        headers = [(name, text.encode()) for name, text in message.headers.items()]
        producer = await self._ensure_started()
        try:
            # aiokafka bounds the metadata wait and the delivery by request_timeout each; the
            # outer bound only guards against a hang inside the client.
            async with asyncio.timeout(2 * self._request_timeout + 1):
                await producer.send_and_wait(message.name, value, key=key, headers=headers)
        except (KafkaError, TimeoutError, OSError) as exc:
            if _must_reset(exc):
                await self._reset(producer)
            raise PublishFailed(
                f"publishing {message.message_id} to {message.name} failed: {_describe(exc)}"
            ) from exc

    async def ping(self) -> None:
        """Raise `PublishFailed` unless a broker answers a metadata request."""
        producer = await self._ensure_started()
        try:
            async with asyncio.timeout(self._request_timeout):
                metadata = await producer.client.fetch_all_metadata()
        except (KafkaError, TimeoutError, OSError) as exc:
            raise PublishFailed(f"kafka ping failed: {_describe(exc)}") from exc
        if not metadata.brokers():
            raise PublishFailed("kafka ping failed: no broker in the cluster metadata")

    async def close(self) -> None:
        """Flush what is in flight (bounded) and close the connections."""
        self._closed = True
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            await _stop(producer, self._request_timeout)

    async def _ensure_started(self) -> Any:
        if self._closed:
            raise PublishFailed("the publisher is closed")
        producer = self._producer
        if producer is not None:
            return producer
        async with self._lock:
            if self._producer is not None:
                return self._producer
            timeout_ms = int(self._request_timeout * 1000)
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap,
                client_id=self._client_id,
                acks="all",  # aiokafka's default is acks=1; an event must survive a leader loss
                enable_idempotence=self._idempotence,
                linger_ms=self._linger_ms,
                request_timeout_ms=timeout_ms,
                retry_backoff_ms=200,
            )
            try:
                async with asyncio.timeout(self._request_timeout):
                    await producer.start()
            except (KafkaError, TimeoutError, OSError) as exc:
                await _stop(producer, 1.0)
                raise PublishFailed(f"kafka producer cannot start: {_describe(exc)}") from exc
            self._producer = producer
            return producer

    async def _reset(self, producer: Any) -> None:
        async with self._lock:
            if self._producer is producer:
                self._producer = None
        log.warning("kafka producer dropped after a non-retriable error; a new one will start")
        await _stop(producer, 1.0)


def _must_reset(exc: BaseException) -> bool:
    # Retriable errors (connection lost, leader moved) are handled by the producer itself.
    return not (isinstance(exc, KafkaError) and exc.retriable)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _stop(producer: Any, limit: float) -> None:
    try:
        async with asyncio.timeout(limit):
            await producer.stop()
    except (KafkaError, TimeoutError, OSError) as exc:
        log.debug("kafka producer stop: %s", _describe(exc))
