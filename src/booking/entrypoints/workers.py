"""Background work: the outbox relay, the reconciler and the payment-results consumer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from booking.adapters.prometheus import PrometheusTelemetry
from booking.application.errors import BookingNotFound
from booking.application.payments import ApplyPaymentResult
from booking.application.reconcile import Reconciler
from booking.application.relay import OutboxRelay
from booking.domain.booking import PaymentResult
from booking.domain.errors import PaymentMismatch
from booking.ports.clock import Clock
from booking.ports.errors import DependencyUnavailable
from booking.ports.outbox import OutboxMessage, OutboxStore

log = logging.getLogger(__name__)

_MAX_PAUSE = 5.0
_STATS_EVERY = 5.0


class RetainedEventPublisher:
    """The event channel when no broker is configured: the outbox row itself is the delivery.

    The row stays in the outbox table (marked dispatched), readable with `booking events`;
    this keeps the relay's per-booking order moving, so the after-commit actions queued behind
    an event (Theater book/release, hold release) still run."""

    def __init__(self) -> None:
        self.retained = 0

    async def publish(self, message: OutboxMessage) -> None:
        self.retained += 1
        log.info(
            "event %s for booking %s kept in the outbox (no broker configured)",
            message.name,
            message.booking_id,
        )

    async def ping(self) -> None:
        return None


class RelayNudge:
    """Wakes the relay right after a request committed outbox rows (else it polls)."""

    def __init__(self, coalesce: float = 0.02) -> None:
        self._event = asyncio.Event()
        self._coalesce = coalesce

    def set(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._event.wait()
        if self._event.is_set():
            # Under load many requests nudge at once: one relay round serves the whole burst.
            await asyncio.sleep(self._coalesce)
        self._event.clear()


class Workers:
    """Contract: `start()` launches the loops as tasks; `stop()` ends them (each finishes the
    round in hand within a bound, else it is cancelled) and never raises. A loop survives any
    error of one round: it logs it and tries again after a pause that grows while it fails."""

    def __init__(
        self,
        *,
        relay: OutboxRelay,
        reconciler: Reconciler,
        store: OutboxStore,
        apply: ApplyPaymentResult,
        clock: Clock,
        metrics: PrometheusTelemetry,
        nudge: RelayNudge,
        relay_interval: float,
        reconcile_interval: float,
        kafka_bootstrap: str | None = None,
        payment_results_topic: str | None = None,
    ) -> None:
        self._relay = relay
        self._reconciler = reconciler
        self._store = store
        self._apply = apply
        self._clock = clock
        self._metrics = metrics
        self._nudge = nudge
        self._relay_interval = relay_interval
        self._reconcile_interval = reconcile_interval
        self._kafka = kafka_bootstrap
        self._topic = payment_results_topic
        self._tasks: list[asyncio.Task[None]] = []
        self._consumer: Any = None
        self._stopping = asyncio.Event()
        self.rounds = {"relay": 0, "reconciler": 0}
        self._stats_at = 0.0

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._tasks)

    def start(self) -> None:
        if self._tasks:
            return
        self._stopping.clear()
        self._tasks.append(asyncio.create_task(self._relay_loop(), name="outbox-relay"))
        self._tasks.append(asyncio.create_task(self._reconcile_loop(), name="reconciler"))
        if self._kafka is not None and self._topic is not None:
            from booking.adapters.kafka.payment_results import KafkaPaymentResultConsumer

            self._consumer = KafkaPaymentResultConsumer(
                self._kafka, self._topic, self.handle_payment_result
            )
            self._tasks.append(
                asyncio.create_task(self._consumer.run(), name="payment-results-consumer")
            )

    async def stop(self, grace: float = 10.0) -> None:
        self._stopping.set()
        self._nudge.set()
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop(grace)
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=grace)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.error("worker %s ended with %r", task.get_name(), task.exception())

    async def handle_payment_result(self, result: PaymentResult) -> None:
        """A result pushed on the topic: applied once; unknown or mismatched ones are dropped."""
        try:
            booking = await self._apply(result, actor="topic")
        except BookingNotFound:
            log.info("payment result for unknown session ignored")
            return
        except PaymentMismatch:
            return  # logged by the use case; nothing changes
        log.info("payment result applied to booking %s: %s", booking.booking_id, booking.status)
        self._nudge.set()

    async def _relay_loop(self) -> None:
        await self._forever(
            "relay", self._relay_round, lambda: self._relay_interval, self._nudge.wait
        )

    async def _relay_round(self) -> None:
        await self._relay.drain(max_rounds=20)
        loop = asyncio.get_running_loop()
        if loop.time() >= self._stats_at:
            self._stats_at = loop.time() + _STATS_EVERY
            self._metrics.outbox_stats(await self._store.stats(), self._clock.now())

    async def _reconcile_round(self) -> None:
        report = await self._reconciler.run_once()
        if report.checked:
            log.info("reconciler checked %s bookings: %s", report.checked, report.actions)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def _reconcile_loop(self) -> None:
        await self._forever(
            "reconciler", self._reconcile_round, lambda: self._reconcile_interval, self._sleep
        )

    async def _forever(
        self,
        name: str,
        round_: Callable[[], Awaitable[None]],
        interval: Callable[[], float],
        wait: Callable[[float], Awaitable[None]],
    ) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                await round_()
                failures = 0
            except DependencyUnavailable as exc:
                failures += 1
                log.warning("%s round failed: %s unavailable", name, exc.dependency)
            except Exception:
                failures += 1
                log.exception("%s round failed", name)
            self.rounds[name] += 1
            if self._stopping.is_set():
                break
            if failures:
                await self._sleep(min(interval() * 2**failures, _MAX_PAUSE))
            else:
                await wait(interval())
