"""Correlation ids, OpenTelemetry tracing (switched on by settings) and the worker's metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import httpx
import structlog
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client.exposition import start_http_server

from booking.adapters.prometheus import PrometheusTelemetry
from booking.entrypoints.settings import Settings
from booking.ports.clock import Clock
from booking.ports.errors import DependencyUnavailable
from booking.ports.outbox import OutboxStore

log = logging.getLogger(__name__)

# Inbound header → the structlog context key the HTTP adapters read when they call a peer.
CORRELATION_HEADERS = {
    b"x-request-id": "request_id",
    b"x-trace-id": "trace_id",
    b"x-span-id": "span_id",
    b"traceparent": "traceparent",
}
MAX_ID_LENGTH = 128
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_PROPAGATOR = TraceContextTextMapPropagator()

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


def parse_traceparent(value: str) -> tuple[str, str, int] | None:
    """(trace id, parent span id, flags) of a W3C `traceparent` of version 00, or None."""
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None or match[1] == _ZERO_TRACE or match[2] == _ZERO_SPAN:
        return None
    return match[1], match[2], int(match[3], 16)


def correlation_ids(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The ids of one request, for every log line and every outbound call.

    `request_id` is `X-Request-ID` or a new one. `trace_id` is `X-Trace-Id`, else the trace of
    a valid `traceparent`, else a new W3C trace id. `span_id` and `traceparent` are passed on
    as received (an invalid `traceparent` is dropped). Overlong values are ignored."""
    context: dict[str, str] = {}
    for name, value in headers:
        key = CORRELATION_HEADERS.get(name.lower())
        if key is not None and value and len(value) <= MAX_ID_LENGTH:
            text = value.decode("latin-1").strip()
            if text:
                context[key] = text
    parent = parse_traceparent(context.get("traceparent", ""))
    if parent is None:
        context.pop("traceparent", None)
    if "request_id" not in context:
        context["request_id"] = new_id()
    if "trace_id" not in context:
        context["trace_id"] = parent[0] if parent else new_id()
    return context


def new_id() -> str:
    """32 random hex digits, never all zeros (a valid W3C trace id): an id to correlate by, not
    a secret, so from `random` (seeded from the OS, again in each forked child) instead of two
    `getrandom` system calls per request."""
    return f"{random.getrandbits(128) or 1:032x}"


# --- tracing ---------------------------------------------------------------------------------


class Tracing:
    """OpenTelemetry tracing of this process, or nothing when it is switched off.

    Contract: when enabled, every HTTP request is a SERVER span (named `METHOD /route/{template}`)
    continuing the caller's W3C `traceparent`, and every call to a peer is a CLIENT span under it
    whose context goes out in the `traceparent` header. The log context of the request carries
    the span's `trace_id`, `span_id` and `traceparent`. `shutdown()` flushes what is buffered.
    Each instance has its own provider (never the global one), so two apps in one process keep
    their spans apart."""

    def __init__(self, provider: TracerProvider | None) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer("booking") if provider is not None else None

    @classmethod
    def disabled(cls) -> Tracing:
        return cls(None)

    @classmethod
    def exporting(
        cls, exporter: SpanExporter, service_name: str = "booking-service", *, batch: bool = True
    ) -> Tracing:
        """Spans go to `exporter` (batched; `batch=False` exports each span as it ends)."""
        provider = TracerProvider(
            resource=Resource.create({"service.name": service_name}), shutdown_on_exit=False
        )
        processor: SpanProcessor = (
            BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        )
        provider.add_span_processor(processor)
        return cls(provider)

    @classmethod
    def from_settings(cls, settings: Settings) -> Tracing:
        """BOOKING_OTEL_ENABLED switches it on; spans go by OTLP over HTTP to
        BOOKING_OTEL_EXPORTER_ENDPOINT (unset: the standard OTEL_EXPORTER_OTLP_* variables)."""
        if not settings.otel_enabled:
            return cls.disabled()
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otel_exporter_endpoint
        exporter = OTLPSpanExporter(
            endpoint=endpoint, timeout=settings.http_timeout_seconds
        )  # the exporter appends nothing to an explicit endpoint: give the full /v1/traces URL
        return cls.exporting(exporter, settings.otel_service_name)

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()

    def server_span(self, method: str, path: str, headers: Iterable[tuple[bytes, bytes]]) -> Any:
        """A started SERVER span continuing the caller's trace, bound to the log context."""
        assert self._tracer is not None
        span = self._tracer.start_span(
            method,
            context=_parent_context(structlog.contextvars.get_contextvars(), headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
        )
        _bind_span(span)
        return span

    def transport(self, peer: str, inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        """A CLIENT span around every call to `peer`; `inner` unchanged when tracing is off."""
        if self._tracer is None:
            return inner
        return TracingTransport(peer, self._tracer, inner)


def tracing_middleware(app: ASGIApp, resolve: Callable[[], Awaitable[Tracing]]) -> ASGIApp:
    """The SERVER span of each HTTP request when tracing is on. Runs inside the layer that binds
    the correlation ids (it reads and rebinds them); `resolve` answers the process's Tracing
    (from the container, once it is running)."""
    found: list[Tracing] = []

    async def traced(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        if not found:
            found.append(await resolve())
        tracing = found[0]
        if not tracing.enabled:
            await app(scope, receive, send)
            return
        method = str(scope.get("method", "GET"))
        status = [500]

        async def send_status(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        span = tracing.server_span(method, str(scope["path"]), scope["headers"])
        try:
            with trace.use_span(span, end_on_exit=False):
                await app(scope, receive, send_status)
        finally:
            route = scope.get("path_template")
            if route:
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", str(route))
            span.set_attribute("http.response.status_code", status[0])
            if status[0] >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()

    return traced


def _parent_context(bound: Mapping[str, Any], headers: Iterable[tuple[bytes, bytes]]) -> Any:
    """The caller's `traceparent`; failing that, a 32-hex `X-Trace-Id` of the gateway becomes
    the trace of this span, so that one trace id names the request everywhere."""
    traceparent = bound.get("traceparent")
    if traceparent:
        return _PROPAGATOR.extract({"traceparent": str(traceparent)})
    sent = any(name.lower() == b"x-trace-id" for name, _ in headers)
    trace_id = str(bound.get("trace_id", "")).lower()
    if sent and _TRACE_ID.match(trace_id):
        remote = SpanContext(
            trace_id=int(trace_id, 16),
            span_id=int(secrets.token_hex(8), 16),
            is_remote=True,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
        )
        return trace.set_span_in_context(NonRecordingSpan(remote))
    return None


def _bind_span(span: trace.Span) -> None:
    context = span.get_span_context()
    if not context.is_valid:
        return
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    structlog.contextvars.bind_contextvars(
        trace_id=format(context.trace_id, "032x"),
        span_id=format(context.span_id, "016x"),
        **carrier,
    )


class TracingTransport(httpx.AsyncBaseTransport):
    """One CLIENT span per call to a peer, its context sent as the W3C `traceparent`."""

    def __init__(self, peer: str, tracer: trace.Tracer, inner: httpx.AsyncBaseTransport) -> None:
        self._peer = peer
        self._tracer = tracer
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with self._tracer.start_as_current_span(
            f"{request.method} {self._peer}",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": request.method,
                "url.full": str(request.url.copy_with(query=None)),
                "peer.service": self._peer,
            },
        ) as span:
            # Replaces the caller's traceparent the adapter copied from the log context.
            _PROPAGATOR.inject(request.headers)
            response = await self._inner.handle_async_request(request)
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(Status(StatusCode.ERROR))
            return response

    async def aclose(self) -> None:
        await self._inner.aclose()


# --- metrics ---------------------------------------------------------------------------------

OUTBOX_STATS_TIMEOUT = 1.0


async def refresh_outbox_gauges(
    store: OutboxStore, clock: Clock, metrics: PrometheusTelemetry
) -> None:
    """Outbox backlog and age as of this scrape (an API replica runs no relay to update them);
    a slow or unreachable database leaves the last values."""
    with contextlib.suppress(DependencyUnavailable, TimeoutError):
        async with asyncio.timeout(OUTBOX_STATS_TIMEOUT):
            metrics.outbox_stats(await store.stats(), clock.now())


class MetricsServer:
    """`/metrics` of a process without an HTTP API (`booking worker`), on its own thread."""

    def __init__(self, metrics: PrometheusTelemetry, port: int, host: str = "0.0.0.0") -> None:  # noqa: S104
        self._server, self._thread = start_http_server(port, host, registry=metrics.registry)
        self.port = int(self._server.server_port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
