"""The runtime: health, metrics, OpenAPI, correlation ids, workers and a clean shutdown."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

import httpx
import pytest
from dishka import Provider, Scope, provide

from booking.domain.booking import PaymentStatus
from booking.entrypoints.app import asgi, create_app
from booking.entrypoints.container import create_container, instances
from booking.ports.outbox import EventPublisher

from .conftest import BASE, Api, ApiFactory, World, auth, running, settings_for


async def test_liveness_and_readiness(api: Api) -> None:
    """Live is always UP; ready lists every dependency and is UP when all answer."""
    live = await api.client.get("/health/live")
    assert live.status_code == 200
    assert live.json() == {"status": "UP"}
    ready = await api.client.get("/health/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "UP"
    assert set(body["checks"]) == {"database", "redis", "kafka", "payment", "theater"}
    assert body["checks"]["database"]["required"] is True


async def test_database_down_makes_the_service_unready(api: Api) -> None:
    """The database is required: down → 503 DOWN."""
    api.world.db.down = True
    ready = await api.client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["status"] == "DOWN"
    assert ready.json()["checks"]["database"]["status"] == "DOWN"


async def test_hold_store_down_is_degraded_but_ready(api: Api) -> None:
    """The seat-hold store is optional: down → 200 DEGRADED, and bookings still work."""
    api.world.locks.down = True
    ready = await api.client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "DEGRADED"
    assert ready.json()["checks"]["redis"]["status"] == "DOWN"
    assert (await api.create([1])).status_code == 201


async def test_metrics_count_outcomes_and_routes(api: Api) -> None:
    """/metrics shows booking outcomes and HTTP requests by route template, never by id."""
    created = await api.booked([2])
    await api.client.get(f"{BASE}/{created['bookingId']}", headers=auth())
    text = (await api.client.get("/metrics")).text
    assert 'booking_outcomes_total{outcome="created",reason=""} 1.0' in text
    assert 'route="/api/v1/bookings/{booking_id}"' in text
    assert f"bookings/{created['bookingId']}" not in text


async def test_request_id_is_echoed_or_invented(api: Api) -> None:
    """X-Request-ID comes back as sent, or a fresh one when absent."""
    sent = await api.client.get("/health/live", headers={"X-Request-ID": "req-123"})
    assert sent.headers["x-request-id"] == "req-123"
    fresh = await api.client.get("/health/live")
    assert len(fresh.headers["x-request-id"]) >= 16


async def test_openapi_documents_every_endpoint_with_examples(api: Api) -> None:
    """The OpenAPI document lists every public endpoint, each with an example and problems."""
    spec = (await api.client.get("/schema/openapi.json")).json()
    paths = spec["paths"]
    expected = {
        ("/api/v1/bookings", "post"),
        ("/api/v1/bookings", "get"),
        ("/api/v1/bookings/{booking_id}", "get"),
        ("/api/v1/bookings/{booking_id}/seats", "get"),
        ("/api/v1/bookings/{booking_id}/verify-payment", "get"),
        ("/api/v1/bookings/{booking_id}/cancel", "post"),
        ("/api/v1/payments/webhook", "post"),
        ("/health/live", "get"),
        ("/health/ready", "get"),
        ("/metrics", "get"),
    }
    found = {(p, m) for p, ops in paths.items() for m in ops}
    assert expected <= found, expected - found
    for path, method in expected:
        responses = paths[path][method]["responses"]
        assert any("examples" in str(r) for r in responses.values()), (path, method)
    assert "examples" in str(paths["/api/v1/payments/webhook"]["post"]["requestBody"])
    create = paths["/api/v1/bookings"]["post"]
    assert "examples" in str(create["requestBody"])
    assert {"409", "429", "503"} <= set(create["responses"])
    assert "application/problem+json" in create["responses"]["409"]["content"]
    docs = await api.client.get("/schema/swagger")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]


async def test_sandbox_checkout_page_pays_the_booking(api: Api) -> None:
    """The checkout page shows Pay and Decline; paying confirms the booking."""
    created = await api.booked([3])
    page_url = created["paymentUrl"].removeprefix("http://testserver.local")
    page = await api.client.get(page_url)
    assert page.status_code == 200
    assert 'id="pay"' in page.text
    assert 'id="decline"' in page.text
    paid = await api.client.post(f"{page_url}/pay")
    assert paid.status_code == 303
    after = await api.client.get(paid.headers["location"])
    assert 'id="booking-status">CONFIRMED' in after.text
    assert 'id="pay"' not in after.text
    booking = await api.client.get(f"{BASE}/{created['bookingId']}", headers=auth())
    assert booking.json()["status"] == "CONFIRMED"


async def test_sandbox_decline_fails_the_booking(api: Api) -> None:
    """Declining on the checkout page fails the booking with PAYMENT_FAILED."""
    created = await api.booked([4])
    page_url = created["paymentUrl"].removeprefix("http://testserver.local")
    assert (await api.client.post(f"{page_url}/decline")).status_code == 303
    booking = await api.client.get(f"{BASE}/{created['bookingId']}", headers=auth())
    assert booking.json()["failureReason"] == "PAYMENT_FAILED"
    assert (await api.client.get("/sandbox/checkout/cs_unknown")).status_code == 404


async def test_in_process_workers_relay_after_a_commit(make_api: ApiFactory) -> None:
    """With workers on, a confirmed booking's event goes out without any manual relay."""
    api = await make_api(settings_for(run_workers=True, relay_interval_seconds=0.05))
    created = await api.booked([5])
    api.settle(created["paymentSessionId"], PaymentStatus.COMPLETED)
    verified = await api.client.get(f"{BASE}/{created['bookingId']}/verify-payment", headers=auth())
    assert verified.json()["status"] == "CONFIRMED"
    for _ in range(200):
        if any(m.name == "booking_success" for m in api.world.publisher.published):
            break
        await asyncio.sleep(0.02)
    assert [m.name for m in api.world.publisher.published] == ["booking_success"]


class _Tracked(Provider):
    """An event publisher whose finalizer records that the container closed it."""

    def __init__(self, publisher: EventPublisher, closed: list[str]) -> None:
        super().__init__(scope=Scope.APP)
        self._publisher = publisher
        self._closed = closed

    @provide
    async def publisher(self) -> AsyncIterator[EventPublisher]:
        yield self._publisher
        self._closed.append("publisher")


async def test_shutdown_closes_the_container_and_leaves_no_tasks(world: World) -> None:
    """After shutdown the container's finalizers ran and no worker task is left running."""
    closed: list[str] = []
    settings = settings_for(run_workers=True, relay_interval_seconds=0.05)
    container = create_container(
        settings, instances(world.overrides()), _Tracked(world.publisher, closed)
    )
    app = create_app(settings, container)
    before = asyncio.all_tasks()
    async with running(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver.local"
        ) as client:
            assert (await client.get("/health/ready")).status_code == 200
        names = {t.get_name() for t in asyncio.all_tasks() - before}
        assert {"outbox-relay", "reconciler"} <= names
    leftover = [t for t in asyncio.all_tasks() - before if not t.done()]
    assert leftover == []
    assert closed == ["publisher"]


async def test_server_app_freezes_what_start_up_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's app factory freezes the objects alive once the lifespan has started (the
    container and what it loaded), so full collections under load do not walk them again."""
    monkeypatch.setenv("BOOKING_DATABASE_URL", "memory://")
    monkeypatch.setenv("BOOKING_RUN_WORKERS", "false")
    monkeypatch.setenv("BOOKING_AUTH_MODE", "gateway")
    gc.unfreeze()
    app = asgi()
    assert gc.get_freeze_count() == 0  # nothing before start-up
    try:
        async with running(app):
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
