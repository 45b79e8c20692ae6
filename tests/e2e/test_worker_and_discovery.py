"""`booking serve --no-workers` beside `booking worker`, peers found through Eureka, short holds:
abandoned checkouts expire and late-polled payments are settled by the worker's reconciler."""

from __future__ import annotations

import random
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.peers import EurekaPeer, PaymentPeer, TheaterPeer
from tests.support.processes import terminate

from .conftest import (
    BASE,
    BOOKING,
    SECRET,
    BookingServer,
    bearer,
    clean_environment,
    run_cli,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


class Worker:
    """`booking worker` in a subprocess."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self._log = workdir / "worker.log"
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(  # noqa: S603 - fixed executable
                [BOOKING, "worker"],
                env=clean_environment(env),
                cwd=workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> int:
        return terminate(self._process)

    def log(self) -> str:
        return self._log.read_text(errors="replace")


@pytest.fixture(scope="module")
def show_id(theater_service: TheaterPeer) -> int:
    show = random.randint(100_000, 999_999)  # noqa: S311 - a show of this module alone
    theater_service.seed_grid(show, rows=2, columns=5, first_seat_id=show * 100 + 1)
    return show


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory,
    e2e_database: str,
    redis_url: str,
    payment_service: PaymentPeer,
    theater_service: TheaterPeer,
    eureka_server: EurekaPeer,
) -> Iterator[tuple[BookingServer, Worker, EurekaPeer]]:
    """The API and the worker as two processes, peers resolved from the registry."""
    workdir = tmp_path_factory.mktemp("split")
    for app, peer in (("payment-service", payment_service), ("theater-service", theater_service)):
        eureka_server.register(app, "127.0.0.1", peer.port)
    env = {
        "BOOKING_DATABASE_URL": e2e_database,
        "BOOKING_REDIS_URL": redis_url,
        "BOOKING_EUREKA_URL": eureka_server.service_url,
        "BOOKING_INSTANCE_HOST": "127.0.0.1",
        "BOOKING_JWT_SECRET": SECRET,
        "BOOKING_AUTH_MODE": "jwt",
        "BOOKING_HOLD_TTL_SECONDS": "2",
        "BOOKING_HOLD_GRACE_SECONDS": "1",
        "BOOKING_RECONCILE_INTERVAL_SECONDS": "0.3",
        "BOOKING_RELAY_INTERVAL_SECONDS": "0.1",
    }
    assert run_cli(["migrate"], env, workdir).returncode == 0
    server = BookingServer(workdir, env)
    server.env["BOOKING_RUN_WORKERS"] = "false"
    server.start()
    worker = Worker(workdir, {**env, "BOOKING_PORT": str(server.port)})
    try:
        yield server, worker, eureka_server
    finally:
        worker_code = worker.stop()
        server.stop()
    assert worker_code == 0, worker.log()[-3000:]
    assert "Traceback" not in worker.log()
    assert server.stopped_cleanly(), server.log()[-3000:]
    assert "BOOKING-SERVICE" not in eureka_server.registry(), "not de-registered on shutdown"


@pytest.fixture(scope="module")
async def http(
    deployment: tuple[BookingServer, Worker, EurekaPeer],
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=deployment[0].url, timeout=20) as client:
        yield client


async def _booking(http: httpx.AsyncClient, booking_id: int) -> dict[str, Any]:
    response = await http.get(f"{BASE}/{booking_id}", headers=bearer())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_registers_in_eureka(deployment: tuple[BookingServer, Worker, EurekaPeer]) -> None:
    """The API process is in the registry as booking-service, UP, with its port."""
    server, _, eureka = deployment
    (instance,) = eureka.registry()["BOOKING-SERVICE"].values()
    assert instance["status"] == "UP"
    assert instance["instance"]["port"]["$"] == server.port
    assert instance["instance"]["healthCheckUrl"].endswith("/health/ready")


async def test_abandoned_checkout_expires_and_releases(
    http: httpx.AsyncClient, show_id: int, theater_service: TheaterPeer
) -> None:
    """Nobody pays: past hold + grace the worker fails it HOLD_EXPIRED and frees the seats."""
    seat = show_id * 100 + 1
    created = await http.post(BASE, json={"showId": show_id, "seatIds": [seat]}, headers=bearer())
    assert created.status_code == 201, created.text
    booking_id = created.json()["bookingId"]

    async def expired() -> bool:
        return (await _booking(http, booking_id))["status"] == "FAILED"

    await wait_for(expired, attempts=200, what="the hold expiring")
    assert (await _booking(http, booking_id))["failureReason"] == "HOLD_EXPIRED"

    async def released() -> bool:
        return theater_service.seat_statuses(show_id)[seat] == "AVAILABLE"

    await wait_for(released, what="the Theater seat released")


async def test_paid_but_never_polled_is_confirmed_by_the_reconciler(
    http: httpx.AsyncClient,
    show_id: int,
    theater_service: TheaterPeer,
    payment_service: PaymentPeer,
) -> None:
    """The user pays and closes the tab: the reconciler asks the Payment Service and confirms."""
    seat = show_id * 100 + 2
    created = await http.post(BASE, json={"showId": show_id, "seatIds": [seat]}, headers=bearer())
    assert created.status_code == 201, created.text
    payment_service.pay(created.json()["paymentSessionId"])

    async def confirmed() -> bool:
        return (await _booking(http, created.json()["bookingId"]))["status"] == "CONFIRMED"

    await wait_for(confirmed, attempts=200, what="the reconciler confirming")

    async def booked() -> bool:
        return theater_service.seat_statuses(show_id)[seat] == "BOOKED"

    await wait_for(booked, what="the Theater seat BOOKED")
