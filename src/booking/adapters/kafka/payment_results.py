"""Kafka consumer of payment results; offsets are committed only after the result is handled."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from booking.domain.booking import PaymentResult, PaymentStatus
from booking.domain.errors import DomainError
from booking.domain.money import Money
from booking.ports.errors import DependencyUnavailable

log = logging.getLogger(__name__)

PaymentResultHandler = Callable[[PaymentResult], Awaitable[None]]

_WIRE_STATUSES = frozenset({PaymentStatus.COMPLETED, PaymentStatus.FAILED, PaymentStatus.PENDING})


class PaymentResultRecord(msgspec.Struct, rename="camel", frozen=True):
    """The record value: `{"sessionId", "bookingId", "amount", "status"}` (amount in rupees)."""

    session_id: str
    status: str
    booking_id: int | None = None
    amount: Decimal | None = None


class UndecodableRecord(ValueError):
    """A record value that is not a payment result; it is logged and skipped."""


def decode_payment_result(value: bytes | None) -> PaymentResult:
    """Decode one record value, or raise `UndecodableRecord`."""
    if value is None:
        raise UndecodableRecord("record without a value")
    try:
        record = msgspec.json.decode(value, type=PaymentResultRecord)
    except msgspec.DecodeError as exc:
        raise UndecodableRecord(str(exc)) from exc
    if not record.session_id:
        raise UndecodableRecord("empty sessionId")
    try:
        status = PaymentStatus(record.status.upper())
    except ValueError as exc:
        raise UndecodableRecord(f"unknown status {record.status!r}") from exc
    if status not in _WIRE_STATUSES:
        raise UndecodableRecord(f"unknown status {record.status!r}")
    try:
        amount = None if record.amount is None else Money.from_major(record.amount)
    except DomainError as exc:
        raise UndecodableRecord(f"bad amount: {exc}") from exc
    return PaymentResult(
        session_id=record.session_id,
        status=status,
        booking_id=record.booking_id,
        amount=amount,
    )


class KafkaPaymentResultConsumer:
    """Feeds payment results from a topic to a handler (the apply-payment-result use case).

    - Records are handled one at a time, in partition order; the offset after a record is
      committed only once the handler returned (manual commits), so a crash redelivers it.
    - A value that does not decode is logged and skipped (its offset committed).
    - A handler raising `DependencyUnavailable` (database down...) leaves the offset alone; the
      same record is handled again after a backoff that doubles up to `max_retry_backoff`.
      Any other handler error is logged and the record skipped: a poison record must not stall
      the partition (the reconciler still asks the Payment Service for pending bookings).
    - A small memory of recently handled (sessionId, status) pairs skips exact repeats; the
      handler must still be idempotent (another replica, or a restart, may deliver again).
    - `run()` consumes until `stop()` (or cancellation), starting the consumer and re-trying
      its start while the broker is unreachable.
    """

    def __init__(
        self,
        bootstrap_servers: str | list[str],
        topic: str,
        handler: PaymentResultHandler,
        *,
        group_id: str = "booking-service-payment-results",
        client_id: str = "booking-service",
        auto_offset_reset: str = "earliest",
        retry_backoff: float = 0.5,
        max_retry_backoff: float = 30.0,
        poll_timeout: float = 0.5,
        request_timeout: float = 10.0,
        session_timeout: float = 10.0,
        heartbeat_interval: float = 3.0,
        recent_size: int = 10_000,
    ) -> None:
        if retry_backoff <= 0 or max_retry_backoff < retry_backoff:
            raise ValueError("0 < retry_backoff <= max_retry_backoff")
        self._bootstrap = bootstrap_servers
        self._topic = topic
        self._handler = handler
        self._group_id = group_id
        self._client_id = client_id
        self._auto_offset_reset = auto_offset_reset
        self._backoff = retry_backoff
        self._max_backoff = max_retry_backoff
        self._poll_ms = int(poll_timeout * 1000)
        self._request_timeout = request_timeout
        self._session_ms = int(session_timeout * 1000)
        self._heartbeat_ms = int(heartbeat_interval * 1000)
        self._recent: OrderedDict[tuple[str, PaymentStatus], None] = OrderedDict()
        self._recent_size = recent_size
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failures = 0
        self.handled = 0  # records the handler accepted (for metrics and tests)
        self.skipped = 0  # undecodable, poison or repeated records

    @property
    def topic(self) -> str:
        return self._topic

    async def run(self) -> None:
        """Consume until `stop()` is called or the task is cancelled (one run per instance;
        a `stop()` that comes before the run began still counts)."""
        self._task = asyncio.current_task()
        try:
            consumer = await self._start()
            if consumer is None:
                return
            try:
                while not self._stopping.is_set():
                    await self._poll_once(consumer)
            finally:
                await _stop(consumer, self._request_timeout)
        finally:
            self._task = None

    async def stop(self, grace: float = 15.0) -> None:
        """Ask `run()` to finish the record in hand and return; cancel it after `grace` seconds."""
        self._stopping.set()
        task = self._task
        if task is None or task is asyncio.current_task():
            return
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            task.cancel()
            await asyncio.wait({task}, timeout=self._request_timeout)

    async def _start(self) -> Any:
        while not self._stopping.is_set():
            consumer = AIOKafkaConsumer(
                self._topic,
                bootstrap_servers=self._bootstrap,
                group_id=self._group_id,
                client_id=self._client_id,
                enable_auto_commit=False,
                auto_offset_reset=self._auto_offset_reset,
                request_timeout_ms=int(self._request_timeout * 1000),
                max_poll_records=100,
                session_timeout_ms=self._session_ms,
                heartbeat_interval_ms=self._heartbeat_ms,
                rebalance_timeout_ms=self._session_ms,
            )
            try:
                async with asyncio.timeout(self._request_timeout):
                    await consumer.start()
            except (KafkaError, TimeoutError, OSError) as exc:
                await _stop(consumer, 1.0)
                log.warning("payment-results consumer cannot start: %r; retrying", exc)
                await self._pause()
                continue
            except asyncio.CancelledError:
                await _stop(consumer, 1.0)
                raise
            self._failures = 0
            return consumer
        return None

    async def _poll_once(self, consumer: Any) -> None:
        try:
            batch = await consumer.getmany(timeout_ms=self._poll_ms)
        except KafkaError as exc:
            log.warning("payment-results poll failed: %r", exc)
            await self._pause()
            return
        for partition, records in batch.items():
            for record in records:
                if self._stopping.is_set():
                    # Not handled: rewind so that the committed offset stays the truth.
                    _seek(consumer, partition, record.offset)
                    return
                if not await self._process(record):
                    _seek(consumer, partition, record.offset)
                    await self._pause()
                    break  # the rest of this partition comes again after the seek
                await self._commit(consumer, partition, record.offset + 1)

    async def _process(self, record: Any) -> bool:
        """Handle one record; False when it must be retried later."""
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        try:
            result = decode_payment_result(record.value)
        except UndecodableRecord as exc:
            log.warning("payment result %s skipped, undecodable: %s", where, exc)
            self.skipped += 1
            return True
        seen = (result.session_id, result.status)
        if seen in self._recent:
            self._recent.move_to_end(seen)
            self.skipped += 1
            return True
        try:
            await self._handler(result)
        except DependencyUnavailable as exc:
            log.warning("payment result %s not applied yet (%s); will retry", where, exc)
            return False
        except Exception:
            log.exception("payment result %s skipped: the handler failed", where)
            self.skipped += 1
            return True
        self._failures = 0
        self.handled += 1
        self._remember(seen)
        return True

    async def _commit(self, consumer: Any, partition: TopicPartition, offset: int) -> None:
        try:
            await consumer.commit({partition: offset})
        except KafkaError as exc:
            # After a rebalance the record may come again; the handler is idempotent.
            log.warning("payment-results commit of %s@%d failed: %r", partition, offset, exc)

    def _remember(self, seen: tuple[str, PaymentStatus]) -> None:
        self._recent[seen] = None
        while len(self._recent) > self._recent_size:
            self._recent.popitem(last=False)

    async def _pause(self) -> None:
        """Wait out a backoff that doubles with each consecutive failure (or until stop)."""
        delay = min(self._max_backoff, self._backoff * 2 ** min(self._failures, 16))
        self._failures += 1
        try:
            async with asyncio.timeout(delay):
                await self._stopping.wait()
        except TimeoutError:
            pass


def _seek(consumer: Any, partition: TopicPartition, offset: int) -> None:
    try:
        consumer.seek(partition, offset)
    except (KafkaError, AssertionError) as exc:
        # The partition was revoked meanwhile: its next owner starts from the committed offset.
        log.info("payment-results seek on %s skipped: %r", partition, exc)


async def _stop(consumer: Any, limit: float) -> None:
    try:
        async with asyncio.timeout(limit):
            await consumer.stop()
    except (KafkaError, TimeoutError, OSError) as exc:
        log.debug("payment-results consumer stop: %s", exc)
