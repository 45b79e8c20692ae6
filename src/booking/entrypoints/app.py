"""The Litestar application factory: routes, the container, workers and the request context."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from dishka import AsyncContainer
from litestar import Litestar
from litestar.enums import ScopeType
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import RedocRenderPlugin, ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Tag
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from booking.adapters.prometheus import PrometheusTelemetry
from booking.application.queries import BookingQueries
from booking.entrypoints import admin, api, operations, sandbox
from booking.entrypoints.container import Peers, Role, create_container
from booking.entrypoints.identity import Authenticator
from booking.entrypoints.observability import Tracing, correlation_ids, tracing_middleware
from booking.entrypoints.problems import exception_handler
from booking.entrypoints.request_scope import request_scope
from booking.entrypoints.settings import Settings, load_settings
from booking.entrypoints.workers import Workers

log = logging.getLogger(__name__)


def _request_context(app: ASGIApp, container: AsyncContainer, *, access_log: bool) -> ASGIApp:
    """Outermost layer: correlation ids bound to every log line of the request and echoed back,
    one access log line, and the HTTP metrics (by route template, so ids never become labels)."""
    access = structlog.get_logger("booking.access")
    metrics: list[PrometheusTelemetry] = []

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        method = str(scope.get("method", "GET"))
        context = correlation_ids(scope["headers"])
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**context)
        status = [500]
        request_id = context["request_id"].encode("latin-1")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id))
                message["headers"] = headers
            await send(message)

        started = time.perf_counter()
        try:
            await app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("path_template") or "unmatched"
            if not metrics:
                metrics.append(await container.get(PrometheusTelemetry))
            metrics[0].http_request(method, route, status[0], elapsed)
            if access_log:
                access.info(
                    "request",
                    method=method,
                    path=scope["path"],
                    status=status[0],
                    ms=round(elapsed * 1000, 1),
                )
            structlog.contextvars.clear_contextvars()

    return middleware


def create_app(
    settings: Settings | None = None,
    container: AsyncContainer | None = None,
    *,
    run_workers: bool | None = None,
) -> Litestar:
    """The service as an ASGI app. Without a container it builds the one composition root
    from the settings; either way the container is closed when the app shuts down.
    Background workers run in-process when `run_workers` (default: the setting) is true."""
    settings = settings or load_settings()
    container = container or create_container(settings, role=Role.API)
    with_workers = settings.run_workers if run_workers is None else run_workers

    @asynccontextmanager
    async def lifespan(started: Litestar) -> AsyncIterator[None]:
        workers: Workers | None = None
        try:
            # What every booking request needs, resolved once (see `api.authenticated`,
            # `BookingController.create` and `.get_one`) instead of through dishka's request
            # scope.
            started.state.authenticator = await container.get(Authenticator)
            started.state.create_route = await container.get(api.CreateRoute)
            started.state.queries = await container.get(BookingQueries)
            peers = await container.get(Peers)
            if peers.directory is not None:
                await peers.directory.start()
            if with_workers:
                workers = await container.get(Workers)
                workers.start()
            yield
        finally:
            if workers is not None:
                await workers.stop()
            await container.close()

    app = Litestar(
        route_handlers=[
            api.BookingController,
            admin.AdminController,
            api.payment_webhook,
            operations.live,
            operations.ready,
            operations.metrics,
            sandbox.checkout_page,
            sandbox.pay,
            sandbox.decline,
        ],
        exception_handlers={Exception: exception_handler},
        request_max_body_size=settings.max_body_bytes,
        lifespan=[lifespan],
        logging_config=None,
        openapi_config=_openapi(),
        debug=False,
    )
    app.state.retry_after = settings.retry_after_seconds
    app.state.dishka_container = container
    app.asgi_handler = request_scope(app.asgi_handler, container)
    traced = tracing_middleware(app.asgi_handler, lambda: container.get(Tracing))
    app.asgi_handler = _request_context(traced, container, access_log=settings.access_log)
    return app


def _openapi() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="BookTicket Booking Service",
        version="1.0.0",
        description=(
            "Seat holds, the payment saga and the booking lifecycle. Identity: a platform JWT "
            "(`Authorization: Bearer`) and/or the gateway's `X-User-*` headers, by "
            "BOOKING_AUTH_MODE. Errors are RFC 9457 problem documents with `errorCode`."
        ),
        path="/schema",
        render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(), RedocRenderPlugin()],
        tags=[
            Tag(name="bookings", description="The public Booking API (through the gateway)"),
            Tag(name="payments", description="Payment results pushed by the payment side"),
            Tag(name="operations", description="Health and metrics"),
            Tag(name="admin", description="Operator tools (ADMIN role)"),
        ],
        components=Components(
            security_schemes={
                "BearerToken": SecurityScheme(
                    type="http", scheme="bearer", bearer_format="JWT", description="platform JWT"
                )
            }
        ),
        security=[{"BearerToken": []}],
    )


def _freeze_survivors() -> None:
    """Move everything alive now out of the cyclic collector's sight (see `asgi`)."""
    gc.collect()
    gc.freeze()


def asgi() -> Any:
    """`uvicorn --factory booking.entrypoints.app:asgi` (what `booking serve` runs).

    Once the app has started (the container built, the adapters and the modules they import
    loaded, the pools opened), what is alive lives as long as the server process: frozen out
    of the cyclic collector's sight, it is not walked again by every full collection, which
    shortens the pauses behind the slowest answers."""
    app = create_app()
    app.on_startup.append(_freeze_survivors)  # runs after the lifespan has started the container
    return app
