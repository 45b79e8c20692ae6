"""End-to-end fixtures: the real `booking serve` process on a socket, and what it talks to."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from booking.entrypoints.identity import mint_token
from tests.support.kafka import FAST_GROUP, KafkaBroker, running_broker
from tests.support.peers import PaymentPeer, TheaterPeer
from tests.support.postgres import PostgresServer
from tests.support.processes import terminate
from tests.support.redis import free_port

BOOKING = str(Path(sys.executable).with_name("booking"))
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
SECRET = base64.b64encode(b"e2e-secret-" * 6).decode()
WEBHOOK_SECRET = "whsec_e2e"
BASE = "/api/v1/bookings"


def clean_environment(extra: dict[str, str]) -> dict[str, str]:
    """The test process's environment without any BOOKING_* setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKING_")}
    env.update(extra)
    return env


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """One `booking` command to completion (bounded)."""
    return subprocess.run(  # noqa: S603 - fixed executable
        [BOOKING, *args],
        env=clean_environment(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class BookingServer:
    """`booking serve` in a subprocess on a free port; its output goes to a log file."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.env = {"BOOKING_PORT": str(self.port), "BOOKING_HOST": "127.0.0.1", **env}
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout = workdir / f"serve-{self.port}.out"
        self.stderr = workdir / f"serve-{self.port}.err"
        self._process: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None

    def start(self) -> None:
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self._process = subprocess.Popen(  # noqa: S603 - fixed executable
                [BOOKING, "serve"],
                env=clean_environment(self.env),
                cwd=self.workdir,
                stdout=out,
                stderr=err,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._fail(f"exited with {self._process.returncode} while starting")
            try:
                if httpx.get(f"{self.url}/health/live", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self._fail(f"did not answer within {START_TIMEOUT} s")

    def stop(self) -> int:
        """SIGTERM, as an orchestrator stops it; answers the exit code (uvicorn re-raises the
        signal after its graceful shutdown, so a clean stop is -SIGTERM)."""
        process, self._process = self._process, None
        if process is None:
            return self.exit_code or 0
        self.exit_code = terminate(process, STOP_TIMEOUT)
        return self.exit_code

    def stopped_cleanly(self) -> bool:
        log = self.log()
        return (
            self.exit_code in (0, -signal.SIGTERM)
            and "Application shutdown complete" in log
            and "Traceback" not in log
        )

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")

    def banner(self) -> str:
        return self.stdout.read_text(errors="replace")

    def _fail(self, why: str) -> None:
        self.stop()
        pytest.fail(
            f"booking serve {why}:\n{self.banner()[-2000:]}\n{self.log()[-4000:]}", pytrace=False
        )


def token(user_id: int = 7, roles: tuple[str, ...] = ("ROLE_USER",), secret: str = SECRET) -> str:
    return mint_token(secret, user_id, roles)


def bearer(user_id: int = 7, roles: tuple[str, ...] = ("ROLE_USER",)) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user_id, roles)}"}


async def wait_for(
    check: Any, *, attempts: int = 150, pause: float = 0.1, what: str = "condition"
) -> Any:
    """Poll an async check until it answers something truthy (bounded)."""
    for _ in range(attempts):
        found = await check()
        if found:
            return found
        await asyncio.sleep(pause)
    pytest.fail(f"{what} not reached after {attempts} polls")


async def consume_for(
    bootstrap: str, topics: list[str], booking_ids: set[int], *, wait: float = 20.0
) -> list[Any]:
    """Records of these bookings on these topics, read as a fresh consumer group (bounded)."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=f"e2e-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=10_000,
        **FAST_GROUP,
    )
    await consumer.start()
    found: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    if json.loads(record.value).get("bookingId") in booking_ids:
                        found.append(record)
            if {json.loads(r.value)["bookingId"] for r in found} >= booking_ids:
                # Keep listening a little to catch duplicates.
                settle = loop.time() + 1.0
                while loop.time() < settle:
                    for records in (await consumer.getmany(timeout_ms=100)).values():
                        found.extend(
                            r
                            for r in records
                            if json.loads(r.value).get("bookingId") in booking_ids
                        )
                break
    finally:
        await consumer.stop()
    return found


@dataclass
class Platform:
    """A production-wired server and everything around it."""

    server: BookingServer
    http: httpx.AsyncClient
    payment: PaymentPeer
    theater: TheaterPeer
    broker: KafkaBroker
    database_url: str
    show_id: int
    results_topic: str
    env: dict[str, str]


@pytest.fixture(scope="module")
async def e2e_database(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """An empty PostgreSQL database of this module (migrated by `booking migrate`)."""
    async with postgres_server.database("booking_e2e") as url:
        yield url


@pytest.fixture(scope="module")
def e2e_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A Kafka broker of this module alone, so that topics hold only our records."""
    with running_broker(tmp_path_factory.mktemp("e2e-kafka")) as broker:
        yield broker
