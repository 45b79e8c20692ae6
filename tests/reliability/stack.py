"""The production wiring for fault tests: replicas of `booking serve` and every part they use,
each part reachable through a proxy the test can cut (or, for Redis, a server it can stop)."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from booking.entrypoints.identity import mint_token
from tests.e2e.conftest import SECRET, WEBHOOK_SECRET, BookingServer, run_cli
from tests.reliability.proxy import TcpProxy
from tests.support.kafka import broker_binary
from tests.support.peers import PaymentPeer, TheaterPeer
from tests.support.postgres import PostgresServer
from tests.support.redis import RedisServer, free_port

BASE = "/api/v1/bookings"
WEBHOOK = "/api/v1/payments/webhook"
TOPICS = ("booking_success", "booking_failed", "booking_refund_required")
OUTAGE_PARTS = ("redis", "broker", "payment", "theater", "postgres")


@dataclass(frozen=True, slots=True)
class Timing:
    """Short holds and fast background loops, so that expiry happens within a test."""

    hold_ttl: int = 6
    grace: int = 3
    reconcile_interval: float = 0.5
    relay_interval: float = 0.1
    http_timeout: float = 2.0

    @property
    def settle_bound(self) -> float:
        """Hold + grace + room for the reconciler's lease and the relay's backoff."""
        return self.hold_ttl + self.grace + 20.0


def gateway_headers(user_id: int) -> dict[str, str]:
    """What the gateway forwards for a user: the JWT and the identity headers it derived."""
    return {
        "Authorization": f"Bearer {mint_token(SECRET, user_id, ['ROLE_USER'])}",
        "X-User-Id": str(user_id),
        "X-User-Name": f"{user_id}_user",
        "X-User-Roles": "ROLE_USER",
    }


class Replica(BookingServer):
    """One `booking serve` process; each start writes a log file of its own, so the log of a
    killed generation survives its restart."""

    def __init__(self, workdir: Path, env: dict[str, str], name: str) -> None:
        super().__init__(workdir, env)
        self.name = name
        self.generation = 0
        self._logs: list[Path] = []

    def start(self) -> None:
        self.generation += 1
        self.stdout = self.workdir / f"{self.name}-{self.generation}.out"
        self.stderr = self.workdir / f"{self.name}-{self.generation}.err"
        self._logs.append(self.stderr)
        super().start()

    def restart(self, **env: str) -> None:
        """Start again on the same port (after a crash or stop), with these settings changed
        (an empty value removes a setting)."""
        self.stop()
        for name, value in env.items():
            if value:
                self.env[name] = value
            else:
                self.env.pop(name, None)
        self.start()

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self._process

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code once the process ended by itself (None if it still runs)."""
        process = self._process
        if process is None:
            return self.exit_code
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def all_logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self._logs if p.exists())


async def start_all(replicas: list[Replica], parallel: int = 2) -> None:
    """Start replicas, `parallel` at a time (each start is mostly CPU: imports, migrations)."""
    import asyncio

    slots = asyncio.Semaphore(parallel)

    async def one(replica: Replica) -> None:
        async with slots:
            await asyncio.to_thread(replica.start)

    await asyncio.gather(*(one(r) for r in replicas))


class Broker:
    """Tansu listening on one port and advertising its proxy's, so that every client (the
    service and the test's consumers) reaches it through the proxy."""

    def __init__(self, workdir: Path, proxy_port: int) -> None:
        self.port = free_port()
        self._proxy_port = proxy_port
        self._log = workdir / "tansu.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 - fixed argument list
                [
                    broker_binary(),
                    "broker",
                    "--listener-url",
                    f"tcp://127.0.0.1:{self.port}",
                    "--advertised-listener-url",
                    f"tcp://127.0.0.1:{self._proxy_port}",
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        import socket

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"Tansu did not start: {self._log.read_text()[-2000:]}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)


@dataclass
class Stack:
    """PostgreSQL (a database of its own on the shared server, behind a proxy), a private Redis,
    a broker, the Payment and Theater peers (each behind a proxy), and the replicas."""

    workdir: Path
    postgres: PostgresServer
    timing: Timing = field(default_factory=Timing)
    database: str = field(default_factory=lambda: f"booking_rel_{uuid.uuid4().hex[:12]}")
    redis: RedisServer | None = None
    broker: Broker | None = None
    payment: PaymentPeer | None = None
    theater: TheaterPeer | None = None
    proxies: dict[str, TcpProxy] = field(default_factory=dict)
    replicas: list[Replica] = field(default_factory=list)
    _stack: ExitStack = field(default_factory=ExitStack)

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        admin = await self.postgres.admin()
        try:
            await admin.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await admin.close()
        self.redis = RedisServer(self.workdir)
        self.redis.start()
        self._stack.callback(self.redis.stop)
        if self.payment is None or self.theater is None:
            # Peers of our own, unless shared ones were given (the pytest session's).
            self.payment = PaymentPeer(self._dir("payment"))
            self.theater = TheaterPeer(self._dir("theater"))
            for peer in (self.payment, self.theater):
                peer.start()
                self._stack.callback(peer.stop)
        kafka_proxy = TcpProxy("127.0.0.1", 0, self.workdir, "broker")
        self.broker = Broker(self.workdir, kafka_proxy.port)
        kafka_proxy.target = ("127.0.0.1", self.broker.port)
        self.broker.start()
        self._stack.callback(self.broker.stop)
        targets = {
            "postgres": (self.postgres.host, self.postgres.port),
            "payment": ("127.0.0.1", self.payment.port),
            "theater": ("127.0.0.1", self.theater.port),
        }
        self.proxies["broker"] = kafka_proxy
        for name, (host, port) in targets.items():
            self.proxies[name] = TcpProxy(host, port, self.workdir, name)
        for proxy in self.proxies.values():
            proxy.start()
            self._stack.callback(proxy.stop)
        migrated = run_cli(["migrate"], self.env(), self.workdir)
        if migrated.returncode != 0:
            raise RuntimeError(f"booking migrate failed: {migrated.stderr[-2000:]}")

    async def close(self) -> None:
        for replica in self.replicas:
            replica.stop()
        self._stack.close()
        admin = await self.postgres.admin()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            await admin.close()

    def _dir(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    # --- the service --------------------------------------------------------------------------

    @property
    def direct_database_url(self) -> str:
        """The database itself (not through the proxy), for the checker's reads."""
        return self.postgres.url(self.database)

    def env(self, **extra: str) -> dict[str, str]:
        assert self.redis is not None
        pg = self.proxies["postgres"]
        t = self.timing
        env = {
            "BOOKING_DATABASE_URL": f"postgresql://{self.postgres.user}@{pg.address}/{self.database}",
            "BOOKING_DATABASE_POOL_SIZE": "10",
            "BOOKING_REDIS_URL": self.redis.url,
            "BOOKING_KAFKA_BOOTSTRAP_SERVERS": self.proxies["broker"].address,
            "BOOKING_KAFKA_ENABLE_IDEMPOTENCE": "false",
            "BOOKING_PAYMENT_SERVICE_URL": f"http://{self.proxies['payment'].address}",
            "BOOKING_THEATER_SERVICE_URL": f"http://{self.proxies['theater'].address}",
            "BOOKING_AUTH_MODE": "gateway+jwt",
            "BOOKING_JWT_SECRET": SECRET,
            "BOOKING_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "BOOKING_HOLD_TTL_SECONDS": str(t.hold_ttl),
            "BOOKING_HOLD_GRACE_SECONDS": str(t.grace),
            "BOOKING_RECONCILE_INTERVAL_SECONDS": str(t.reconcile_interval),
            "BOOKING_RELAY_INTERVAL_SECONDS": str(t.relay_interval),
            "BOOKING_HTTP_TIMEOUT_SECONDS": str(t.http_timeout),
            "BOOKING_RETRY_AFTER_SECONDS": "1",
            "BOOKING_LOG_JSON": "true",
            "BOOKING_CREATE_LIMIT_PER_MINUTE": "0",
        }
        env.update(extra)
        return env

    def replica(self, name: str, **extra: str) -> Replica:
        """A new replica (not started) with the stack's settings plus `extra`."""
        replica = Replica(self._dir(f"replica-{name}"), self.env(**extra), name)
        self.replicas.append(replica)
        return replica

    def new_show(self, rows: int, columns: int) -> tuple[int, list[int]]:
        """A show of its own at the Theater: its id and its show-seat ids."""
        assert self.theater is not None
        show_id = int(uuid.uuid4().int % 9_000_000) + 1_000_000
        seats = self.theater.seed_grid(
            show_id, rows=rows, columns=columns, first_seat_id=show_id * 1000 + 1
        )
        return show_id, [s["showSeatId"] for s in seats]

    async def db(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.direct_database_url, timeout=10)


def iter_json_lines(text: str) -> Iterator[dict[str, Any]]:
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except ValueError:
                continue


async def async_get(url: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(url, **kwargs)
