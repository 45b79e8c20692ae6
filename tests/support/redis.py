"""Test fixtures: the machine's Redis (shared, keys under a per-run prefix) and private servers."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

# Tests use a database of their own on the shared server, and every run its own key prefix, so
# parallel runs (and a service using db 0) never see each other's keys.
SHARED_REDIS_URL = os.environ.get("BOOKING_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of the machine's Redis; fails the run loudly when it does not answer."""
    client = redis.Redis.from_url(SHARED_REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis is not reachable at {SHARED_REDIS_URL} ({exc!r}). Start it "
            "(`redis-server` or `make services`) or set BOOKING_TEST_REDIS_URL.",
            pytrace=False,
        )
    finally:
        client.close()
    return SHARED_REDIS_URL


@pytest.fixture(scope="session")
def redis_key_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to this test run; its keys are deleted at the end."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


class RedisServer:
    """A private `redis-server` on a free port that a test may stop and start again."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(
                "redis-server is not installed (apt-get install redis-server)", pytrace=False
            )
        self._binary = binary
        self._workdir = workdir
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log = workdir / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, wait: float = 10.0) -> None:
        """Start the server on its port (again) and wait until it answers PING."""
        if self.running:
            return
        with self._log.open("ab") as log_file:
            self._process = subprocess.Popen(  # noqa: S603 - fixed argument list
                [
                    self._binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self._workdir),
                    "--daemonize",
                    "no",
                ],  # fmt: skip
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            client = redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
            finally:
                client.close()
        log_tail = self._log.read_text(errors="replace")[-2000:]
        self.stop()
        pytest.fail(f"private redis-server did not start on {self.port}:\n{log_tail}")

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open and nothing answers."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Kill the server (no shutdown save: it is configured without persistence)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private, running redis-server for outage tests; killed at the end of the test."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
