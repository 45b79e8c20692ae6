"""Health probes and Prometheus metrics."""

from __future__ import annotations

from dishka import FromDishka
from dishka.integrations.litestar import inject
from litestar import Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example

from booking.adapters.prometheus import CONTENT_TYPE, PrometheusTelemetry
from booking.entrypoints.examples import PublicOperation
from booking.entrypoints.health import DOWN, HealthChecks, Liveness, Readiness
from booking.entrypoints.observability import refresh_outbox_gauges
from booking.ports.clock import Clock
from booking.ports.outbox import OutboxStore

_READY_EXAMPLE = Example(
    summary="Redis down, still ready",
    value={
        "status": "DEGRADED",
        "checks": {
            "database": {"status": "UP", "required": True, "kind": "postgresql"},
            "redis": {
                "status": "DOWN",
                "required": False,
                "kind": "redis",
                "detail": "unreachable",
            },
        },
    },
)


@get(
    "/health/live",
    tags=["operations"],
    operation_class=PublicOperation,
    summary="The process is alive",
    responses={
        200: ResponseSpec(
            Liveness,
            description="Alive",
            examples=[Example(summary="alive", value={"status": "UP"})],
            generate_examples=False,
        )
    },
)
async def live() -> Liveness:
    return Liveness("UP")


@get(
    "/health/ready",
    tags=["operations"],
    operation_class=PublicOperation,
    summary="Every dependency probed; 503 when a required one is down",
    description="Redis, Kafka, Payment and Theater down make the service DEGRADED, not unready "
    "(BOOKING_READINESS_REQUIRED chooses).",
    responses={
        200: ResponseSpec(
            Readiness, description="Ready", examples=[_READY_EXAMPLE], generate_examples=False
        ),
        503: ResponseSpec(Readiness, description="A required dependency is down"),
    },
)
@inject
async def ready(checks: FromDishka[HealthChecks]) -> Response[Readiness]:
    readiness = await checks.readiness()
    return Response(readiness, status_code=503 if readiness.status == DOWN else 200)


@get(
    "/metrics",
    tags=["operations"],
    operation_class=PublicOperation,
    summary="Prometheus metrics",
    media_type=CONTENT_TYPE,
    responses={
        200: ResponseSpec(
            str,
            description="Text exposition format",
            media_type=CONTENT_TYPE,
            examples=[
                Example(
                    summary="counters",
                    value='booking_outcomes_total{outcome="created",reason=""} 3.0',
                )
            ],
            generate_examples=False,
        )
    },
)
@inject
async def metrics(
    telemetry: FromDishka[PrometheusTelemetry],
    store: FromDishka[OutboxStore],
    clock: FromDishka[Clock],
) -> Response[bytes]:
    await refresh_outbox_gauges(store, clock, telemetry)
    return Response(telemetry.exposition(), media_type=CONTENT_TYPE)
