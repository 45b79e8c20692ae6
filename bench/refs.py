"""Reference figures of the parts: PostgreSQL (pgbench) and Redis (the hold script)."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import resource
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import pgscripts
from bench.loadgen import percentile
from bench.stack import (
    PG_HOST,
    PG_PORT,
    PG_USER,
    REDIS_DB,
    REDIS_HOST,
    REDIS_PORT,
    BenchError,
    CpuMeter,
    redis_cli,
    redis_url,
)


def pgbench(
    database: str, script: str, *, clients: int, seconds: int, workdir: Path
) -> dict[str, Any]:
    """Transactions/s and latency percentiles of one pgbench script made from the service's
    statements (`bench.pgscripts`: `create` or `booking`), prepared, as asyncpg sends them."""
    path = pgscripts.write_script(workdir / "pgbench-scripts", script)
    logs = workdir / f"pgbench-{script}"
    logs.mkdir(parents=True, exist_ok=True)
    for old in logs.glob("log*"):
        old.unlink()
    argv = ["pgbench", "-n", "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER]
    argv += ["-M", "prepared", "-c", str(clients), "-j", str(min(clients, 2))]
    argv += ["-T", str(seconds), "-f", str(path)]
    argv += ["-l", "--log-prefix", str(logs / "log"), database]
    meter = CpuMeter(comms={"postgres": ("postgres",)})
    meter.start()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    wall = time.monotonic() - t0
    cpu = meter.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu["pgbench"] = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / wall
    if done.returncode != 0:
        raise BenchError(f"pgbench {script} failed:\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}")
    found = re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout)
    if found is None:
        raise BenchError(f"pgbench printed no tps:\n{done.stdout[-1500:]}")
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    # Per-transaction log lines: client_id transaction_no latency_us script_no epoch epoch_us.
    latencies: list[float] = []
    for path in logs.glob("log*"):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[2].isdigit():
                latencies.append(int(parts[2]) / 1000)
    latencies.sort()
    return {
        "tps": float(found.group(1)),
        "clients": clients,
        "seconds": seconds,
        "failed": int(failed.group(1)) if failed else 0,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "cpu": cpu,
    }


def hold_script() -> str:
    # The service's own acquire script, so the reference runs exactly what a hold runs.
    from booking.adapters.redis import seat_lock

    return str(seat_lock._ACQUIRE)


def redis_benchmark(*, clients: int, pipeline: int, requests: int) -> dict[str, Any]:
    """EVALSHA of the hold script on 4 random keys of a 1,000-seat show, random owners: as in an
    on-sale most calls find a key taken. `pipeline` > 1 shows the server's own limit."""
    sha = redis_cli("SCRIPT", "LOAD", hold_script())
    keys = ["bench:hold:{show:1}:seat:__rand_int__" for _ in range(4)]
    argv = ["redis-benchmark", "-h", REDIS_HOST, "-p", str(REDIS_PORT), "--dbnum", str(REDIS_DB)]
    argv += ["-n", str(requests), "-c", str(clients), "-P", str(pipeline), "-r", "1000", "--csv"]
    argv += ["EVALSHA", sha, "4", *keys, "owner:__rand_int__", "300000"]
    meter = CpuMeter(comms={"redis": ("redis-server",)})
    meter.start()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    wall = time.monotonic() - t0
    cpu = meter.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu["redis-benchmark"] = (
        after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    ) / wall
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    if done.returncode != 0 or not rows:
        raise BenchError(f"redis-benchmark failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")
    row = rows[-1]
    return {
        "calls_per_s": float(row["rps"]),
        "clients": clients,
        "pipeline": pipeline,
        "p50_ms": float(row["p50_latency_ms"]),
        "p99_ms": float(row["p99_latency_ms"]),
        "cpu": cpu,
    }


async def _redis_py(clients: int, seconds: float) -> dict[str, Any]:
    from booking.adapters.redis.seat_lock import RedisSeatLock, create_redis_client
    from booking.ports.errors import SeatLockUnavailable

    client = create_redis_client(redis_url())
    lock = RedisSeatLock(client, key_prefix="bench-py")
    ttl = timedelta(minutes=5)
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds
    import random

    failed = [0]

    async def one(worker: int) -> None:
        rng = random.Random(worker)
        n = 0
        while time.monotonic() < stop_at:
            seats = rng.sample(range(1, 1001), rng.randint(1, 4))
            t = time.perf_counter()
            try:
                await lock.acquire(1, seats, f"owner-{worker}-{n}", ttl)
            except SeatLockUnavailable:
                # A slow or restarting Redis (or the breaker open): count it, go on.
                failed[0] += 1
                await asyncio.sleep(0.01)
                continue
            latencies.append((time.perf_counter() - t) * 1000)
            n += 1

    t0 = time.monotonic()
    try:
        await asyncio.gather(*(one(w) for w in range(clients)))
    finally:
        await client.aclose()
    wall = time.monotonic() - t0
    latencies.sort()
    return {
        "calls_per_s": len(latencies) / wall,
        "clients": clients,
        "failed": failed[0],
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
    }


def redis_py(clients: int, seconds: float) -> dict[str, Any]:
    """The service's own client: RedisSeatLock.acquire from one asyncio process (uvloop)."""
    import uvloop

    meter = CpuMeter(comms={"redis": ("redis-server",)})
    meter.start()
    before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    result = uvloop.run(_redis_py(clients, seconds))
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = meter.stop()
    cpu["python client"] = (
        after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    ) / wall
    result["cpu"] = cpu
    return result
