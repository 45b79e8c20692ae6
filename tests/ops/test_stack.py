"""The compose stack without a container engine: the processes compose.yaml starts (migrate, two
`serve --no-workers` replicas, the worker, the Payment and Theater services), started with the
commands and settings written there, against PostgreSQL, Redis and a Kafka broker."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from booking.entrypoints.identity import mint_token
from tests.support.kafka import KafkaBroker, read_records, running_broker
from tests.support.postgres import PostgresServer
from tests.support.processes import terminate
from tests.support.redis import free_port

from .compose import env_of, load_compose, with_option

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.kafka]

BIN = Path(sys.executable).parent
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
BASE = "/api/v1/bookings"


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKING_")}
    return env | extra | {"PYTHONUNBUFFERED": "1"}


class Process:
    """One process of the stack, its output in files of the work directory."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.workdir = workdir
        self.out = workdir / f"{name}.out"
        self.err = workdir / f"{name}.err"
        self._process: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None

    def start(self) -> None:
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self._process = subprocess.Popen(  # noqa: S603 - our own executables
                self.argv, env=clean_env(self.env), cwd=self.workdir, stdout=out, stderr=err
            )

    def wait_http(self, url: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.fail(f"did not answer {url} within {START_TIMEOUT} s")

    def check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            self.fail(f"exited with {self._process.returncode}")

    def stop(self) -> int:
        """SIGTERM, as the container engine stops it; the exit code."""
        process, self._process = self._process, None
        if process is None:
            return self.returncode or 0
        self.returncode = terminate(process, STOP_TIMEOUT)
        return self.returncode

    def log(self) -> str:
        return self.err.read_text(errors="replace") if self.err.exists() else ""

    def fail(self, why: str) -> None:
        self.stop()
        tail = self.log()[-3000:]
        pytest.fail(f"{self.name} ({' '.join(self.argv)}) {why}:\n{tail}", pytrace=False)


@dataclass
class Stack:
    replicas: list[str]
    worker_metrics: str
    payment: str
    theater: str
    processes: dict[str, Process]
    env: dict[str, str]
    broker: KafkaBroker
    show_id: int
    workdir: Path

    def booking_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - our own executable
            [str(BIN / "booking"), *args],
            env=clean_env(self.env),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture(scope="module")
async def stack_database(postgres_server: PostgresServer) -> AsyncIterator[str]:
    async with postgres_server.database("booking_stack") as url:
        yield url


@pytest.fixture(scope="module")
def stack_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    with running_broker(tmp_path_factory.mktemp("stack-kafka")) as broker:
        yield broker


async def create_topics(bootstrap: str, job: dict[str, Any]) -> list[str]:
    """What the compose file's kafka-topics job does: its topics with its partition count."""
    script = " ".join(job["command"])
    found = re.search(r"for topic in ([\w ]+); do", script)
    partitions = re.search(r"--partitions (\d+)", script)
    assert found is not None
    assert partitions is not None
    topics = found[1].split()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, int(partitions[1]), 1) for t in topics])
    finally:
        await admin.close()
    return topics


@pytest.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory,
    stack_database: str,
    stack_broker: KafkaBroker,
    redis_url: str,
) -> AsyncIterator[Stack]:
    """Every process of compose.yaml's stack, with the file's commands and settings; only the
    addresses of the servers (and the test broker's lack of idempotence) are local."""
    services = load_compose()["services"]
    workdir = tmp_path_factory.mktemp("stack")
    await create_topics(stack_broker.bootstrap, services["kafka-topics"])
    processes: dict[str, Process] = {}
    show_id = random.randint(10_000_000, 99_999_999)  # noqa: S311 - Redis is shared
    try:
        # Peers and the migration job first, side by side; then the replicas and the worker.
        urls: dict[str, str] = {}
        for peer in ("payment", "theater"):
            service = services[peer]
            port = free_port()
            command = with_option(
                with_option(service["command"], "--host", "127.0.0.1"), "--port", str(port)
            )
            if "--demo-show" in command:
                command = with_option(command, "--demo-show", str(show_id))
            argv = [sys.executable, *service["entrypoint"][1:], *command]
            processes[peer] = Process(peer, argv, {}, workdir)
            processes[peer].start()
            urls[peer] = f"http://127.0.0.1:{port}"

        local = {
            "BOOKING_DATABASE_URL": stack_database,
            "BOOKING_REDIS_URL": redis_url,
            "BOOKING_KAFKA_BOOTSTRAP_SERVERS": stack_broker.bootstrap,
            "BOOKING_KAFKA_ENABLE_IDEMPOTENCE": "false",  # the test broker refuses it
            "BOOKING_PAYMENT_SERVICE_URL": urls["payment"],
            "BOOKING_THEATER_SERVICE_URL": urls["theater"],
        }

        def env_for(name: str, **extra: str) -> dict[str, str]:
            env = env_of(services[name])
            missing = set(local) - set(env)
            assert not missing, f"compose.yaml no longer sets {missing} for {name}"
            return env | local | {"BOOKING_DATA_DIR": str(workdir / "var")} | extra

        migrate = Process(
            "migrate",
            [str(BIN / "booking"), *services["migrate"]["command"]],
            env_for("migrate"),
            workdir,
        )
        migrate.start()
        migrate_code = await asyncio.to_thread(_wait, migrate)
        assert migrate_code == 0, migrate.log()
        assert "database migrated" in migrate.out.read_text()

        replicas: list[str] = []
        serve = services["booking"]
        for index in range(serve["deploy"]["replicas"]):
            port = free_port()
            command = with_option(
                with_option(serve["command"], "--host", "127.0.0.1"), "--port", str(port)
            )
            name = f"booking-{index + 1}"
            processes[name] = Process(
                name, [str(BIN / "booking"), *command], env_for("booking"), workdir
            )
            processes[name].start()
            replicas.append(f"http://127.0.0.1:{port}")
        metrics_port = str(free_port())
        assert "BOOKING_WORKER_METRICS_PORT" in env_of(services["worker"])
        worker_env = env_for(
            "worker", BOOKING_WORKER_METRICS_PORT=metrics_port, BOOKING_HOST="127.0.0.1"
        )
        processes["worker"] = Process(
            "worker", [str(BIN / "booking"), *services["worker"]["command"]], worker_env, workdir
        )
        processes["worker"].start()

        for peer, url in urls.items():
            await asyncio.to_thread(processes[peer].wait_http, f"{url}/__control/health")
        for index, url in enumerate(replicas):
            await asyncio.to_thread(
                processes[f"booking-{index + 1}"].wait_http, f"{url}/health/ready"
            )
        await asyncio.to_thread(
            processes["worker"].wait_http, f"http://127.0.0.1:{metrics_port}/metrics"
        )
        yield Stack(
            replicas,
            f"http://127.0.0.1:{metrics_port}/metrics",
            urls["payment"],
            urls["theater"],
            processes,
            worker_env,
            stack_broker,
            show_id,
            workdir,
        )
    finally:
        codes = {name: p.stop() for name, p in reversed(processes.items())}
    for name, code in codes.items():
        if name.startswith("booking") or name == "worker":
            assert code in (0, -signal.SIGTERM), (
                f"{name} exited {code}:\n{processes[name].log()[-3000:]}"
            )
            assert "Traceback" not in processes[name].log(), processes[name].log()[-3000:]


def _wait(process: Process) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process._process is not None and process._process.poll() is not None:  # noqa: SLF001
            return process.stop()
        time.sleep(0.1)
    process.fail("did not finish")
    return -1


def bearer(secret: str, user_id: int, roles: tuple[str, ...] = ("ROLE_USER",)) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(secret, user_id, roles)}"}


async def poll(check: Callable[[], Awaitable[Any]], what: str, attempts: int = 200) -> Any:
    for _ in range(attempts):
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.1)
    pytest.fail(f"{what}: not reached after {attempts} polls")


async def test_the_stack_books_through_both_replicas(stack: Stack) -> None:
    """Two replicas share one database, Redis and Kafka: a seat booked on one is refused on the
    other, a payment made for one is verified through the other, and the worker books the seats
    at the Theater and publishes exactly one booking_success, keyed by the booking id."""
    secret = stack.env["BOOKING_JWT_SECRET"]
    first, second = stack.replicas
    seat = [stack.show_id * 1000 + 1, stack.show_id * 1000 + 2]
    trace_id = uuid.uuid4().hex
    async with httpx.AsyncClient(timeout=20) as http:
        created = await http.post(
            f"{first}{BASE}",
            json={"showId": stack.show_id, "seatIds": seat},
            headers=bearer(secret, 7) | {"X-Request-ID": "stack-req-1", "X-Trace-Id": trace_id},
        )
        assert created.status_code == 201, created.text
        booking = created.json()
        taken = await http.post(
            f"{second}{BASE}",
            json={"showId": stack.show_id, "seatIds": seat[1:]},
            headers=bearer(secret, 8),
        )
        assert taken.status_code == 409, taken.text
        assert taken.json()["errorCode"] == "SEAT_LOCK_CONFLICT"

        paid = await http.post(
            f"{stack.payment}/__control/sessions/{booking['paymentSessionId']}/pay"
        )
        assert paid.is_success, paid.text
        verified = await http.get(
            f"{second}{BASE}/{booking['bookingId']}/verify-payment", headers=bearer(secret, 7)
        )
        assert verified.status_code == 200, verified.text
        assert verified.json()["status"] == "CONFIRMED"

        async def booked_at_theater() -> bool:
            answer = await http.get(f"{stack.theater}/__control/shows/{stack.show_id}")
            seats = answer.json()
            status = {s["showSeatId"]: s["status"] for s in seats}
            return all(status[s] == "BOOKED" for s in seat)

        await poll(booked_at_theater, "the worker books the seats at the Theater")

    records = await read_records(
        stack.broker.bootstrap,
        ["booking_success"],
        group_id=f"stack-{uuid.uuid4().hex[:8]}",
        expected=1,
    )
    mine = [r for r in records if json.loads(r.value)["bookingId"] == booking["bookingId"]]
    assert len(mine) == 1
    assert mine[0].key == str(booking["bookingId"]).encode()

    log = stack.processes["booking-1"].log()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    tagged = [line for line in lines if line.get("request_id") == "stack-req-1"]
    assert tagged, "the request's lines carry its X-Request-ID"
    assert all(line.get("trace_id") == trace_id for line in tagged), tagged


async def test_metrics_of_replicas_and_worker(stack: Stack) -> None:
    """Each replica serves /metrics with the outbox backlog; the worker's metrics port shows
    what its relay dispatched and what its reconciler did."""
    async with httpx.AsyncClient(timeout=10) as http:
        for replica in stack.replicas:
            text = (await http.get(f"{replica}/metrics")).text
            assert "booking_outbox_backlog " in text
            assert "booking_http_requests_total" in text

        async def dispatched() -> bool:
            text = (await http.get(stack.worker_metrics)).text
            return 'booking_outbox_dispatched_total{kind="event",result="ok"}' in text

        await poll(dispatched, "the worker's metrics count dispatched events")


async def test_admin_tools_on_the_stack(stack: Stack) -> None:
    """`booking admin` and the admin API read the stack's database: the outbox drains, a booking's
    audit trail is there, and a replayed event reaches Kafka again with its eventId."""
    secret = stack.env["BOOKING_JWT_SECRET"]
    seat = [stack.show_id * 1000 + 10]
    async with httpx.AsyncClient(timeout=20) as http:
        created = await http.post(
            f"{stack.replicas[1]}{BASE}",
            json={"showId": stack.show_id, "seatIds": seat},
            headers=bearer(secret, 9),
        )
        assert created.status_code == 201, created.text
        booking_id = created.json()["bookingId"]
        cancelled = await http.post(
            f"{stack.replicas[0]}{BASE}/{booking_id}/cancel", headers=bearer(secret, 9)
        )
        assert cancelled.status_code == 200, cancelled.text

        admin = bearer(secret, 1, ("ROLE_ADMIN",))

        async def drained() -> bool:
            answer = await http.get(f"{stack.replicas[0]}/api/v1/admin/outbox", headers=admin)
            assert answer.status_code == 200, answer.text
            return bool(answer.json()["pending"] == 0)

        await poll(drained, "the worker empties the outbox")
        refused = await http.get(
            f"{stack.replicas[0]}/api/v1/admin/outbox", headers=bearer(secret, 9)
        )
        assert refused.status_code == 403
        unknown = await http.post(
            f"{stack.replicas[1]}/api/v1/admin/outbox/no-such-row/replay", headers=admin
        )
        assert unknown.status_code == 404

    outbox, audit, refunds, events = await asyncio.gather(
        asyncio.to_thread(stack.booking_cli, "admin", "outbox"),
        asyncio.to_thread(stack.booking_cli, "admin", "audit", str(booking_id)),
        asyncio.to_thread(stack.booking_cli, "admin", "refunds"),
        asyncio.to_thread(stack.booking_cli, "events", "--limit", "20"),
    )
    for result in (outbox, audit, refunds, events):
        assert result.returncode == 0, result.stderr
    report = json.loads(outbox.stdout)
    assert report["pending"] == 0
    assert report["failed"] == []
    trail = [json.loads(line) for line in audit.stdout.splitlines()]
    assert trail[0]["toStatus"] == "PENDING"
    assert trail[-1]["toStatus"] == "CANCELLED"
    assert trail[-1]["actor"] == "user:9"
    assert refunds.stdout == ""

    failed = [
        json.loads(line)
        for line in events.stdout.splitlines()
        if json.loads(line)["bookingId"] == booking_id
    ]
    assert [e["name"] for e in failed] == ["booking_failed"]
    event_id = failed[0]["eventId"]
    replay = stack.booking_cli("admin", "replay", event_id)
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout) == {"messageId": event_id, "requeued": True}

    records = await read_records(
        stack.broker.bootstrap,
        ["booking_failed"],
        group_id=f"stack-{uuid.uuid4().hex[:8]}",
        expected=2,
    )
    mine = [r for r in records if json.loads(r.value)["bookingId"] == booking_id]
    assert [json.loads(r.value)["eventId"] for r in mine] == [event_id, event_id]
    assert len({r.partition for r in mine}) == 1, "one booking's records share a partition"
