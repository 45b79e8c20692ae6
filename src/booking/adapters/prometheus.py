"""Prometheus metrics: the Telemetry port, HTTP and peer-call timings, outbox backlog."""

from __future__ import annotations

import re
import time
from datetime import datetime

import httpx
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from booking.ports.outbox import OutboxStats

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_WORD = re.compile(r"^[a-z][a-z-]*$")


class PrometheusTelemetry:
    """`Telemetry` on prometheus-client, with its own registry (one per container, so two apps
    in one process never collide). Also the service's other metrics: HTTP requests, peer calls,
    the outbox backlog and the readiness of each dependency."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        if registry is None:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        r = self.registry
        self.bookings = Counter(
            "booking_outcomes_total",
            "Bookings by outcome (created/confirmed/failed/cancelled/rejected/...) and reason",
            ["outcome", "reason"],
            registry=r,
        )
        self.hold_conflicts = Counter(
            "booking_hold_conflicts_total",
            "Creates refused because a seat hold was taken",
            [],
            registry=r,
        )
        self.hold_degraded = Gauge(
            "booking_hold_store_degraded",
            "1 while the seat-hold store is unreachable (the database claim decides alone)",
            registry=r,
        )
        self.reconciler = Counter(
            "booking_reconciler_actions_total",
            "Reconciler decisions by action",
            ["action"],
            registry=r,
        )
        self.outbox_rows = Counter(
            "booking_outbox_dispatched_total",
            "Outbox rows dispatched, by kind (event/action) and result (ok/error)",
            ["kind", "result"],
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "booking_outbox_backlog", "Outbox rows not yet dispatched", registry=r
        )
        self.outbox_failing = Gauge(
            "booking_outbox_failing",
            "Undispatched outbox rows that failed at least once",
            registry=r,
        )
        self.outbox_age = Gauge(
            "booking_outbox_oldest_age_seconds", "Age of the oldest undispatched row", registry=r
        )
        self.http_requests = Counter(
            "booking_http_requests_total",
            "HTTP requests served, by method, route template and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "booking_http_request_duration_seconds",
            "HTTP request latency by method and route template",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.peer_latency = Histogram(
            "booking_peer_call_duration_seconds",
            "Latency of calls to the Payment and Theater services, by peer and operation",
            ["peer", "operation"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.peer_errors = Counter(
            "booking_peer_call_errors_total",
            "Failed calls to peers by kind (timeout, connect, transport, http_4xx, http_5xx)",
            ["peer", "operation", "kind"],
            registry=r,
        )
        self.dependency_up = Gauge(
            "booking_dependency_up",
            "1 when the dependency answered its last probe",
            ["dependency"],
            registry=r,
        )
        self._http_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._peer_children: dict[tuple[str, str], Histogram] = {}
        self.webhooks = Counter(
            "booking_payment_webhooks_total",
            "Payment webhooks by result (applied/ignored/refused)",
            ["result"],
            registry=r,
        )

    # --- the Telemetry port ---------------------------------------------------------------

    def booking_outcome(self, outcome: str, reason: str | None = None) -> None:
        self.bookings.labels(outcome, reason or "").inc()

    def hold_conflict(self) -> None:
        self.hold_conflicts.inc()

    def hold_store_degraded(self, degraded: bool) -> None:
        self.hold_degraded.set(1 if degraded else 0)

    def reconciler_action(self, action: str) -> None:
        self.reconciler.labels(action).inc()

    def outbox_dispatched(self, kind: str, ok: bool) -> None:
        self.outbox_rows.labels(kind, "ok" if ok else "error").inc()

    # --- the rest ----------------------------------------------------------------------------

    def outbox_stats(self, stats: OutboxStats, now: datetime) -> None:
        self.outbox_backlog.set(stats.pending)
        self.outbox_failing.set(stats.failing)
        oldest = stats.oldest_pending_at
        self.outbox_age.set(max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        # The label children of each (method, route template, status), looked up once: every
        # request passes here, and `labels()` validates and locks on each call.
        key = (method, route, status)
        children = self._http_children.get(key)
        if children is None:
            children = self._http_children[key] = (
                self.http_requests.labels(method, route, str(status)),
                self.http_latency.labels(method, route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def dependency(self, name: str, up: bool) -> None:
        self.dependency_up.labels(name).set(1 if up else 0)

    def webhook(self, result: str) -> None:
        self.webhooks.labels(result).inc()

    def peer_call(self, peer: str, operation: str, seconds: float, error: str | None) -> None:
        # As `http_request`: the latency child of each (peer, operation) looked up once.
        latency = self._peer_children.get((peer, operation))
        if latency is None:
            latency = self._peer_children[peer, operation] = self.peer_latency.labels(
                peer, operation
            )
        latency.observe(seconds)
        if error is not None:
            self.peer_errors.labels(peer, operation, error).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def operation_of(path: str) -> str:
    """A low-cardinality name for a peer call: the last plain word of its path (`verify`,
    `create`, `lock`, `seats`), never an id."""
    for part in reversed(path.split("/")):
        if _WORD.match(part):
            return part
    return "root"


class InstrumentedTransport(httpx.AsyncBaseTransport):
    """Times every call to one peer and counts its failures by kind, below the adapter's own
    retries (each attempt is observed)."""

    def __init__(
        self,
        peer: str,
        telemetry: PrometheusTelemetry,
        inner: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._peer = peer
        self._telemetry = telemetry
        self._inner = inner if inner is not None else httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        operation = operation_of(request.url.path)
        started = time.perf_counter()
        try:
            response = await self._inner.handle_async_request(request)
        except httpx.TimeoutException:
            self._observe(operation, started, "timeout")
            raise
        except httpx.ConnectError:
            self._observe(operation, started, "connect")
            raise
        except httpx.TransportError:
            self._observe(operation, started, "transport")
            raise
        status = response.status_code
        error = "http_5xx" if status >= 500 else "http_4xx" if status >= 400 else None
        self._observe(operation, started, error)
        return response

    def _observe(self, operation: str, started: float, error: str | None) -> None:
        self._telemetry.peer_call(self._peer, operation, time.perf_counter() - started, error)

    async def aclose(self) -> None:
        await self._inner.aclose()
