"""wrk as the load generator: run bench/lua/booking.lua, read back its per-request record."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.stack import BenchError, CpuMeter

SCRIPT = Path(__file__).resolve().parent / "lua" / "booking.lua"


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


@dataclass
class Record:
    """Every answer of one wrk run: completion times and latencies (µs, monotonic clock)."""

    threads: list[dict[str, Any]]
    summary: dict[str, Any]
    wall: float
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def start(self) -> float:
        return min(t["start"] for t in self.threads)

    def times(self, kind: str) -> list[tuple[float, float]]:
        pairs: list[tuple[float, float]] = []
        for t in self.threads:
            pairs.extend(zip(t[f"{kind}_t"], t[f"{kind}_lat"], strict=True))
        return pairs

    def codes(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for t in self.threads:
            for code, n in t["codes"].items():
                total[code] = total.get(code, 0) + n
        return total

    def last_ok(self) -> float | None:
        found = [max(t["ok_t"]) for t in self.threads if t["ok_t"]]
        return max(found) if found else None

    def end(self) -> float:
        ends = [max(t[k]) for t in self.threads for k in ("ok_t", "rej_t", "err_t") if t[k]]
        return max(ends) if ends else self.start

    def stats(self, since: float | None = None, until: float | None = None) -> dict[str, Any]:
        """Rates per second and latency percentiles (ms) of each kind of answer in a window
        of completion times; the default window is the whole run."""
        t0 = self.start if since is None else since
        t1 = self.end() if until is None else until
        span = max((t1 - t0) / 1e6, 1e-6)
        out: dict[str, Any] = {"window_s": span}
        for kind in ("ok", "rej", "err"):
            lats = sorted(lat for t, lat in self.times(kind) if t0 <= t <= t1)
            out[f"{kind}_n"] = len(lats)
            out[f"{kind}_per_s"] = len(lats) / span
            for q in (50, 95, 99):
                value = percentile(lats, q)
                out[f"{kind}_p{q}_ms"] = None if value is None else value / 1000
        out["seats_ok"] = sum(t["seats_ok"] for t in self.threads)
        out["codes"] = self.codes()
        out["wrk_errors"] = {
            k: v for k, v in self.summary.items() if k not in ("duration_us", "requests") and v
        }
        return out


def run_wrk(
    url: str,
    *,
    mode: str,
    connections: int,
    duration: float,
    out: Path,
    env: Mapping[str, str],
    rate: float = 0.0,
    meter: CpuMeter | None = None,
    stop_when: Callable[[], bool] | None = None,
    poll: float = 0.25,
    timeout_s: int = 10,
) -> Record:
    """One wrk run with `connections` threads of one connection each.

    `rate` > 0 makes it an open loop at that many requests/s in total. `stop_when` is polled
    every `poll` seconds and ends the run early (SIGINT: wrk then reports as usual)."""
    out.unlink(missing_ok=True)
    seconds = max(1, round(duration))
    argv = ["wrk", "-t", str(connections), "-c", str(connections), "-d", f"{seconds}s"]
    argv += ["--timeout", f"{timeout_s}s", "-s", str(SCRIPT), url]
    wrk_env = {
        **os.environ,
        **env,
        "BENCH_MODE": mode,
        "BENCH_THREADS": str(connections),
        "BENCH_RATE": str(rate),
        "BENCH_OUT": str(out),
    }
    if meter is not None:
        meter.start()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    process = subprocess.Popen(
        argv, env=wrk_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    cpu: dict[str, float] = {}
    try:
        deadline = t0 + seconds + 30
        while process.poll() is None:
            if time.monotonic() > deadline:
                raise BenchError("wrk did not end in time")
            time.sleep(poll)
            if stop_when is not None and process.poll() is None and stop_when():
                process.send_signal(signal.SIGINT)
                stop_when = None
        if meter is not None:
            # wrk has exited: measure the servers' share over the same wall time.
            cpu = meter.stop()
        output = process.stdout.read() if process.stdout else ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # wrk is a child of this process: its CPU time shows once it has been waited for.
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    cpu["wrk"] = used / max(wall, 1e-6)
    if process.returncode != 0 or not out.exists():
        raise BenchError(f"wrk failed (exit {process.returncode}):\n{output[-2000:]}")
    data = json.loads(out.read_text())
    record = Record(data["threads"], data["summary"], wall, cpu)
    (out.with_suffix(".txt")).write_text(output)
    return record
