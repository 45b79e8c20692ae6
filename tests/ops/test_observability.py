"""Observability against the real peer services: correlation ids and W3C trace context on every
outbound call, OpenTelemetry spans (in-memory exporter), and every metric the platform watches."""

from __future__ import annotations

import contextlib
import http.server
import random
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from booking.adapters.memory.clock import FakeClock
from booking.adapters.memory.seat_lock import MemorySeatLock
from booking.adapters.prometheus import PrometheusTelemetry, operation_of
from booking.application.reconcile import Reconciler
from booking.entrypoints.app import create_app
from booking.entrypoints.container import create_container, instances
from booking.entrypoints.observability import Tracing, correlation_ids, parse_traceparent
from booking.entrypoints.settings import load_settings
from booking.ports.clock import Clock
from booking.ports.seat_lock import SeatLock
from tests.http.conftest import BASE, auth, running, settings_for
from tests.support.peers import PaymentPeer, TheaterPeer

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN}-01"


@dataclass
class PeerApi:
    """The app wired to the real Payment and Theater peers (memory database and holds)."""

    client: httpx.AsyncClient
    container: Any
    clock: FakeClock
    locks: MemorySeatLock
    spans: InMemorySpanExporter | None
    payment: PaymentPeer
    theater: TheaterPeer
    show_id: int

    def seats(self, *offsets: int) -> list[int]:
        return [self.show_id * 100 + o for o in offsets]

    async def create(self, offsets: list[int], **headers: str) -> httpx.Response:
        return await self.client.post(
            BASE,
            json={"showId": self.show_id, "seatIds": self.seats(*offsets)},
            headers=auth() | headers,
        )

    def peer_requests(self, request_id: str) -> list[dict[str, Any]]:
        """What both peers received for the request with this X-Request-ID."""
        seen = self.theater.requests() + self.payment.requests()
        return [r for r in seen if r["headers"].get("x-request-id") == request_id]


PeerApiFactory = Callable[..., Awaitable[PeerApi]]


@pytest.fixture
async def peer_api(
    payment_service: PaymentPeer, theater_service: TheaterPeer
) -> AsyncIterator[PeerApiFactory]:
    """Builds apps on the session's peer services, each with a show of its own."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(*, traced: bool) -> PeerApi:
            show_id = random.randint(1_000_000, 9_999_999)  # noqa: S311 - a show of this test
            theater_service.seed_grid(show_id, rows=2, columns=5, first_seat_id=show_id * 100 + 1)
            clock = FakeClock(datetime.now(UTC))
            locks = MemorySeatLock(clock)
            exporter = InMemorySpanExporter() if traced else None
            overrides: dict[Any, object] = {Clock: clock, SeatLock: locks}
            if exporter is not None:
                overrides[Tracing] = Tracing.exporting(exporter, batch=False)
            settings = settings_for(
                payment_service_url=payment_service.url,
                theater_service_url=theater_service.url,
            )
            container = create_container(settings, instances(overrides))
            app = create_app(settings, container)
            await stack.enter_async_context(running(app))
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver.local"
            )
            await stack.enter_async_context(client)
            return PeerApi(
                client,
                container,
                clock,
                locks,
                exporter,
                payment_service,
                theater_service,
                show_id,
            )

        yield make
        theater_service.clear_faults()
        payment_service.clear_faults()


def test_correlation_ids_are_taken_derived_or_invented() -> None:
    """X-Request-ID and X-Trace-Id are kept; the trace of a traceparent is the trace id; a
    malformed traceparent is dropped; missing ids are invented."""
    given = correlation_ids([(b"X-Request-ID", b"r-1"), (b"traceparent", TRACEPARENT.encode())])
    assert given == {"request_id": "r-1", "trace_id": TRACE_ID, "traceparent": TRACEPARENT}
    gateway = correlation_ids([(b"x-trace-id", b"abc123"), (b"x-span-id", b"def456")])
    assert gateway["trace_id"] == "abc123"
    assert gateway["span_id"] == "def456"
    invented = correlation_ids([(b"traceparent", b"00-zz-00-01"), (b"x-request-id", b"x" * 500)])
    assert "traceparent" not in invented
    assert re.fullmatch(r"[0-9a-f]{32}", invented["trace_id"])
    assert re.fullmatch(r"[0-9a-f]{32}", invented["request_id"])
    assert parse_traceparent(f"00-{'0' * 32}-{PARENT_SPAN}-01") is None


async def test_request_and_trace_ids_reach_every_peer_call(peer_api: PeerApiFactory) -> None:
    """Without tracing, every call to Theater and Payment carries the caller's X-Request-ID,
    X-Trace-Id and traceparent unchanged."""
    api = await peer_api(traced=False)
    response = await api.create(
        [1, 2], **{"X-Request-ID": "obs-req-1", "X-Trace-Id": TRACE_ID, "traceparent": TRACEPARENT}
    )
    assert response.status_code == 201, response.text
    assert response.headers["x-request-id"] == "obs-req-1"
    calls = api.peer_requests("obs-req-1")
    paths = {c["path"].rsplit("/", 1)[-1] for c in calls}
    assert {"verify", "lock", "create"} <= paths, paths
    for call in calls:
        assert call["headers"]["x-trace-id"] == TRACE_ID
        assert call["headers"]["traceparent"] == TRACEPARENT


async def test_invented_ids_are_passed_on_too(peer_api: PeerApiFactory) -> None:
    """A request without ids gets a request id (echoed) and a trace id, both sent to the peers."""
    api = await peer_api(traced=False)
    response = await api.create([3])
    assert response.status_code == 201, response.text
    request_id = response.headers["x-request-id"]
    calls = api.peer_requests(request_id)
    assert len(calls) >= 3
    trace_ids = {c["headers"].get("x-trace-id") for c in calls}
    assert len(trace_ids) == 1
    assert re.fullmatch(r"[0-9a-f]{32}", trace_ids.pop() or "")


async def test_spans_continue_the_callers_trace_into_the_peers(peer_api: PeerApiFactory) -> None:
    """With tracing on: a SERVER span under the caller's traceparent, a CLIENT span per peer
    call under it, and each peer receives the traceparent of its CLIENT span."""
    api = await peer_api(traced=True)
    assert api.spans is not None
    response = await api.create([4], **{"X-Request-ID": "obs-req-2", "traceparent": TRACEPARENT})
    assert response.status_code == 201, response.text
    spans = api.spans.get_finished_spans()
    server = [s for s in spans if s.kind is SpanKind.SERVER]
    assert len(server) == 1
    root = server[0]
    assert root.name == "POST /api/v1/bookings"
    assert root.context.trace_id == int(TRACE_ID, 16)
    assert root.parent is not None
    assert root.parent.span_id == int(PARENT_SPAN, 16)
    assert root.attributes is not None
    assert root.attributes["http.route"] == "/api/v1/bookings"
    assert root.attributes["http.response.status_code"] == 201
    clients = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert {s.name for s in clients} >= {"POST theater", "POST payment"}
    for span in clients:
        assert span.context.trace_id == root.context.trace_id
        assert span.parent is not None
        assert span.parent.span_id == root.context.span_id
    client_ids = {format(s.context.span_id, "016x") for s in clients}
    for call in api.peer_requests("obs-req-2"):
        parsed = parse_traceparent(call["headers"]["traceparent"])
        assert parsed is not None
        assert parsed[0] == TRACE_ID
        assert parsed[1] in client_ids
        assert call["headers"]["x-trace-id"] == TRACE_ID


async def test_gateway_trace_id_becomes_the_trace_without_traceparent(
    peer_api: PeerApiFactory,
) -> None:
    """With tracing on and only X-Trace-Id from the gateway, the spans join that trace."""
    api = await peer_api(traced=True)
    assert api.spans is not None
    response = await api.client.get("/health/live", headers={"X-Trace-Id": TRACE_ID})
    assert response.status_code == 200
    (span,) = api.spans.get_finished_spans()
    assert span.context.trace_id == int(TRACE_ID, 16)
    assert span.name == "GET /health/live"


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition (labels in any order); fails if absent."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if metric == name and all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    raise AssertionError(f"no sample {name} {labels} in /metrics")


async def test_metrics_after_a_lifecycle_show_what_operators_watch(
    peer_api: PeerApiFactory,
) -> None:
    """After create, conflict, pay, decline, expiry, a peer error and a hold-store outage,
    /metrics has each metric: outcomes by reason, hold conflicts, hold store degraded, outbox
    backlog and age, peer latency and errors by kind, reconciler actions."""
    api = await peer_api(traced=False)
    paid = (await api.create([1])).json()
    assert (await api.create([1])).status_code == 409  # refused at the hold
    api.payment.pay(paid["paymentSessionId"])
    verified = await api.client.get(f"{BASE}/{paid['bookingId']}/verify-payment", headers=auth())
    assert verified.json()["status"] == "CONFIRMED"

    declined = (await api.create([2])).json()
    api.payment.expire(declined["paymentSessionId"])
    failed = await api.client.get(f"{BASE}/{declined['bookingId']}/verify-payment", headers=auth())
    assert failed.status_code == 402

    api.theater.add_fault("status", "/verify", status=503, times=1)
    expiring = await api.create([3])
    assert expiring.status_code == 201, expiring.text  # the retry succeeded
    api.clock.advance(timedelta(minutes=10))
    report = await (await api.container.get(Reconciler)).run_once()
    assert report.actions.get("expired") == 1, report

    api.locks.down = True
    assert (await api.create([4])).status_code == 201
    assert (await api.client.get("/health/ready")).status_code == 200
    text = (await api.client.get("/metrics")).text
    assert _sample(text, "booking_hold_store_degraded") == 1.0
    api.locks.down = False

    assert _sample(text, "booking_outcomes_total", outcome="created") >= 3
    assert _sample(text, "booking_outcomes_total", outcome="confirmed") == 1
    assert _sample(text, "booking_outcomes_total", outcome="failed", reason="PAYMENT_FAILED") == 1
    assert _sample(text, "booking_outcomes_total", outcome="failed", reason="HOLD_EXPIRED") == 1
    assert _sample(text, "booking_hold_conflicts_total") == 1
    rejected = _sample(
        text, "booking_outcomes_total", outcome="rejected", reason="SEATS_UNAVAILABLE"
    )
    assert rejected == 1
    assert _sample(text, "booking_reconciler_actions_total", action="expired") == 1
    assert _sample(text, "booking_outbox_backlog") > 0  # no relay runs in this app
    assert _sample(text, "booking_outbox_oldest_age_seconds") >= 600
    for peer, operation in [("theater", "verify"), ("theater", "lock"), ("payment", "create")]:
        count = _sample(
            text, "booking_peer_call_duration_seconds_count", peer=peer, operation=operation
        )
        assert count >= 1, (peer, operation)
    assert _sample(text, "booking_peer_call_duration_seconds_count", peer="payment") >= 1
    errors = _sample(
        text, "booking_peer_call_errors_total", peer="theater", operation="verify", kind="http_5xx"
    )
    assert errors == 1
    assert _sample(text, "booking_http_requests_total", route="/api/v1/bookings", status="201")
    assert _sample(text, "booking_dependency_up", dependency="database") == 1.0
    assert _sample(text, "booking_dependency_up", dependency="redis") == 0.0


class _Collector(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP trace receiver: keeps each decoded export request."""

    received: ClassVar[list[ExportTraceServiceRequest]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.received.append(request)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_: object) -> None:
        return None


@pytest.fixture
def collector() -> Iterator[tuple[str, list[ExportTraceServiceRequest]]]:
    """A local OTLP/HTTP collector on a free port."""
    _Collector.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1/traces", _Collector.received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def test_settings_switch_on_otlp_export(
    collector: tuple[str, list[ExportTraceServiceRequest]], tmp_path: Path
) -> None:
    """BOOKING_OTEL_ENABLED with an exporter endpoint: the request's span reaches an OTLP/HTTP
    collector under the configured service name, at the latest when the app shuts down."""
    endpoint, received = collector
    settings = load_settings(
        {
            "BOOKING_DATA_DIR": str(tmp_path),
            "BOOKING_DATABASE_URL": "memory://",
            "BOOKING_RUN_WORKERS": "false",
            "BOOKING_OTEL_ENABLED": "true",
            "BOOKING_OTEL_EXPORTER_ENDPOINT": endpoint,
            "BOOKING_OTEL_SERVICE_NAME": "booking-under-test",
        },
        dotenv=None,
    )
    app = create_app(settings)
    async with (
        running(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver.local"
        ) as client,
    ):
        response = await client.get("/health/live", headers={"traceparent": TRACEPARENT})
        assert response.status_code == 200
    spans = [
        (resource.resource, span)
        for request in received
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    assert [span.name for _, span in spans] == ["GET /health/live"]
    resource, span = spans[0]
    assert span.trace_id.hex() == TRACE_ID
    assert span.parent_span_id.hex() == PARENT_SPAN
    names = {a.key: a.value.string_value for a in resource.attributes}
    assert names["service.name"] == "booking-under-test"


def test_http_metrics_count_each_series_apart_and_keep_counting() -> None:
    """Repeated requests of one route and status add up in one series; another status or
    method is its own series, with its own latency histogram."""
    from booking.adapters.prometheus import PrometheusTelemetry

    metrics = PrometheusTelemetry()
    for seconds in (0.002, 0.004, 0.2):
        metrics.http_request("POST", "/api/v1/bookings", 409, seconds)
    metrics.http_request("POST", "/api/v1/bookings", 201, 0.03)
    metrics.http_request("GET", "/api/v1/bookings", 200, 0.001)
    text = metrics.exposition().decode()

    def count(method: str, status: str) -> float:
        return _sample(
            text, "booking_http_requests_total", method=method, route=BASE, status=status
        )

    assert (count("POST", "409"), count("POST", "201"), count("GET", "200")) == (3, 1, 1)
    latency = "booking_http_request_duration_seconds"
    assert _sample(text, latency + "_count", method="POST", route=BASE) == 4
    assert _sample(text, latency + "_bucket", method="POST", route=BASE, le="0.005") == 2
    assert _sample(text, latency + "_sum", method="GET", route=BASE) == pytest.approx(0.001)


@pytest.mark.parametrize(
    ("path", "operation"),
    [
        ("/api/v1/theater/shows/900002/seats/lock", "lock"),
        ("/api/v1/payments/cs_123/verify", "verify"),
        ("/api/v1/payments/checkout-sessions", "checkout-sessions"),
        ("/api/v1/theater/shows/5/seats/", "seats"),
        ("/eureka/apps/THEATER-SERVICE", "apps"),
        ("/", "root"),
        ("/12/34", "root"),
    ],
)
def test_a_peer_call_is_named_by_the_last_plain_word_of_its_path(path: str, operation: str) -> None:
    assert operation_of(path) == operation


def test_peer_call_latency_is_kept_per_peer_and_operation() -> None:
    telemetry = PrometheusTelemetry()
    telemetry.peer_call("theater", "lock", 0.25, None)
    telemetry.peer_call("theater", "lock", 0.5, "http_5xx")
    telemetry.peer_call("payment", "verify", 1.0, None)
    text = telemetry.exposition().decode()
    assert (
        _sample(text, "booking_peer_call_duration_seconds_count", peer="theater", operation="lock")
        == 2
    )
    assert (
        _sample(text, "booking_peer_call_duration_seconds_sum", peer="theater", operation="lock")
        == 0.75
    )
    assert (
        _sample(
            text, "booking_peer_call_duration_seconds_count", peer="payment", operation="verify"
        )
        == 1
    )
    errors = _sample(
        text, "booking_peer_call_errors_total", peer="theater", operation="lock", kind="http_5xx"
    )
    assert errors == 1
