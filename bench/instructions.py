"""Instructions per answer: the service's own cost of one request, counted, not timed.

`python -m bench.instructions [--requests 1000] [--only reject,read,...]` runs the service's ASGI
app in one process (no HTTP server, no load generator: raw ASGI calls, one at a time) under
valgrind's callgrind, which counts the instructions the process executes. Each scenario runs
twice, with a few warm-up requests and with `--requests` more; the difference over
`--requests` is the instructions of one answer, start-up and warm-up cancelled out.

Instruction counts do not move with the machine's speed (which drifts here by ±30% within an
hour, in CPU time as much as in throughput), so two versions of the code compare to a fraction
of a percent. They are not time: a system call or a cache miss costs far more than its
instructions. Scenarios (the embedded default's sandbox peers, real Redis and PostgreSQL):

- reject: `POST /api/v1/bookings` for seats all held in Redis by another booking (409);
- read: `GET /api/v1/bookings/{id}` of one booking on PostgreSQL (200);
- create: `POST /api/v1/bookings` of one free seat (201): the hold in Redis, the Theater's
  prices and lock and the Payment checkout over HTTP (the peers run in processes of their own,
  outside callgrind, so only the service's instructions are counted), two statements on
  PostgreSQL;
- bare-post, bare-get: the same requests to the bare Litestar app of `bench/bare.py`, the
  floor of one request that the goals of issue 7 are ratios to.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.stack import (
    ROOT,
    VENV_BIN,
    BenchError,
    database_url,
    fresh_database,
    redis_cli,
    redis_url,
    seed_show,
    start_peer,
)

WARMUP = 100
BASE = "/api/v1/bookings"
SHOW = 900_001  # the held-seat show (the hold answers before any inventory lookup)
CREATE_SHOW = 900_002  # the create scenario's show: each run books seats of its own
SEATS = 1000
USER = b"7"
_COLLECTED = re.compile(r"Collected : (\d+)")
SCENARIOS = {
    "reject": "reject (409, every seat held in Redis)",
    "read": "read (200, one booking on PostgreSQL)",
    "create": "create (201, one free seat: Redis, 3 HTTP calls to the peers, 2 SQL statements)",
    "bare-post": "bare Litestar POST (201, bench/bare.py)",
    "bare-get": "bare Litestar GET (200, bench/bare.py)",
}


def _env(database: str | None, work: Path) -> dict[str, str]:
    env = {
        "BOOKING_REDIS_URL": redis_url(),
        "BOOKING_AUTH_MODE": "gateway",
        "BOOKING_CREATE_LIMIT_PER_MINUTE": "0",
        "BOOKING_LOG_LEVEL": "WARNING",
        "BOOKING_ACCESS_LOG": "false",
        "BOOKING_DATA_DIR": str(work),
        # No relay or reconciler: their rounds come with the clock, not with the requests, and
        # a run under callgrind is slower on a busier machine, so they would make the counts
        # depend on the machine's speed after all.
        "BOOKING_RUN_WORKERS": "false",
    }
    if database is not None:
        env["BOOKING_DATABASE_URL"] = database_url(database)
    return env


def _scope(method: str, path: str, body: bytes) -> dict[str, Any]:
    headers = [
        (b"host", b"bench"),
        (b"x-user-id", USER),
        (b"x-user-name", USER + b"_bench"),
        (b"x-user-roles", b"ROLE_USER"),
    ]
    if body:
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8080),
        "headers": headers,
        "state": {},
    }


async def _call(app: Any, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    answer: dict[str, Any] = {"status": 0, "body": b""}
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # no disconnect while the answer is written
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    await app(_scope(method, path, body), receive, send)
    return answer["status"], answer["body"]


async def _child(scenario: str, count: int) -> None:
    """Inside valgrind: start the app, make `count` requests of `scenario`, stop."""
    app: Any
    if scenario.startswith("bare"):
        from bench.bare import create_app

        app = create_app()
    else:
        from booking.entrypoints.app import asgi

        app = asgi()
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise BenchError(f"the app did not start: {started}")
    request: Callable[[int], Awaitable[tuple[int, bytes]]]

    def create(n: int) -> Awaitable[tuple[int, bytes]]:
        # Two of the held show's seats: the service rejects them, the bare app books them.
        seats = [1 + n % SEATS, 1 + (n + 1) % SEATS]
        return _call(app, "POST", BASE, json.dumps({"showId": SHOW, "seatIds": seats}).encode())

    if scenario in ("reject", "bare-post"):
        request, expected = create, 409 if scenario == "reject" else 201
    elif scenario == "create":
        first = int(os.environ["BENCH_FIRST_SEAT"])

        def request(n: int) -> Awaitable[tuple[int, bytes]]:
            body = json.dumps({"showId": CREATE_SHOW, "seatIds": [first + n]}).encode()
            return _call(app, "POST", BASE, body)

        expected = 201
    elif scenario == "bare-get":

        def request(n: int) -> Awaitable[tuple[int, bytes]]:
            return _call(app, "GET", f"{BASE}/{1 + n}")

        expected = 200
    else:
        # Each run books another seat of the demo show: the database outlives one run.
        seat = int(os.environ["BENCH_READ_SEAT"])
        status, body = await _call(
            app, "POST", BASE, json.dumps({"showId": 1, "seatIds": [seat]}).encode()
        )
        if status != 201:
            raise BenchError(f"could not create the booking to read: {status} {body[:300]!r}")
        path = f"{BASE}/{json.loads(body)['bookingId']}"

        def request(n: int) -> Awaitable[tuple[int, bytes]]:
            return _call(app, "GET", path)

        expected = 200
    statuses: Counter[int] = Counter()
    for n in range(count):
        status, _ = await request(n)
        statuses[status] += 1
    await inbox.put({"type": "lifespan.shutdown"})
    await lifespan
    if set(statuses) != {expected}:
        raise BenchError(f"{scenario}: expected only {expected}, got {dict(statuses)}")
    print(json.dumps({"statuses": dict(statuses)}))


def _instructions(scenario: str, count: int, env: dict[str, str]) -> int:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise BenchError("valgrind is not installed (apt-get install valgrind)")
    argv = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    argv += [str(VENV_BIN / "python"), "-m", "bench.instructions", "--child", scenario]
    argv += ["--requests", str(count)]
    done = subprocess.run(
        argv,
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise BenchError(f"{scenario} under callgrind failed:\n{done.stdout}{done.stderr[-3000:]}")
    return int(found[1])


def _per_answer(scenario: str, requests: int, env: dict[str, str]) -> float:
    # The two runs side by side (one core each): counts do not depend on what else runs. Each
    # books seats of its own: the read its one booking, the create one seat per request.
    base_env = {**env, "BENCH_READ_SEAT": "1", "BENCH_FIRST_SEAT": "1"}
    more_env = {**env, "BENCH_READ_SEAT": "2", "BENCH_FIRST_SEAT": str(1 + WARMUP)}
    with ThreadPoolExecutor(max_workers=2) as pool:
        base = pool.submit(_instructions, scenario, WARMUP, base_env)
        more = pool.submit(_instructions, scenario, WARMUP + requests, more_env)
        return (more.result() - base.result()) / requests


def _hold_every_seat() -> None:
    lines = "".join(
        f"SET booking:hold:{{show:{SHOW}}}:seat:{s} bench-foreign-owner PX 3600000\n"
        for s in range(1, SEATS + 1)
    )
    redis_cli("--pipe", stdin=lines)


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--requests", type=int, default=1000, help="requests counted per scenario")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated subset")
    parser.add_argument("--child", choices=tuple(SCENARIOS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import uvloop

        uvloop.run(_child(args.child, args.requests))
        return
    scenarios = [s for s in args.only.split(",") if s]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        raise BenchError(f"unknown scenarios {sorted(unknown)} (of {', '.join(SCENARIOS)})")
    counts: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="booking-instructions-") as work:
        redis_cli("FLUSHDB")
        try:
            for scenario in scenarios:
                if scenario == "read":
                    with fresh_database(f"booking_instructions_{os.getpid()}") as database:
                        env = _env(database, Path(work))
                        _migrate(env)
                        counts[scenario] = _per_answer(scenario, args.requests, env)
                elif scenario == "create":
                    with fresh_database(f"booking_instructions_{os.getpid()}") as database:
                        env = _env(database, Path(work))
                        _migrate(env)
                        counts[scenario] = _create(args.requests, env, Path(work))
                else:
                    if scenario == "reject":
                        _hold_every_seat()
                    counts[scenario] = _per_answer(scenario, args.requests, _env(None, Path(work)))
                print(f"{SCENARIOS[scenario]}: {counts[scenario]:,.0f} instructions per answer")
        finally:
            redis_cli("FLUSHDB")
    for answer, floor in (("reject", "bare-post"), ("create", "bare-post"), ("read", "bare-get")):
        if answer in counts and floor in counts:
            print(f"{answer} / {floor}: {counts[answer] / counts[floor]:.2f}x")


def _create(requests: int, env: dict[str, str], work: Path) -> float:
    """The create scenario against the Theater and Payment peers, started here (not counted)."""
    peers = [start_peer("theater", work), start_peer("payment", work)]
    try:
        theater, payment = peers
        # Seats 1..WARMUP for the shorter run, WARMUP+1.. for the longer: 2 x WARMUP + requests.
        seats = -(-(2 * WARMUP + requests) // 50) * 50
        seed_show(theater, CREATE_SHOW, 1, seats)
        return _per_answer(
            "create",
            requests,
            {
                **env,
                "BOOKING_THEATER_SERVICE_URL": theater.url,
                "BOOKING_PAYMENT_SERVICE_URL": payment.url,
            },
        )
    finally:
        for peer in peers:
            peer.proc.stop()


def _migrate(env: dict[str, str]) -> None:
    done = subprocess.run(
        [str(VENV_BIN / "booking"), "migrate"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"booking migrate failed: {done.stderr[-2000:]}")


if __name__ == "__main__":
    main()
