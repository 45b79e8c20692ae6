"""`python -m tests.reliability.report`: the fault and race scenarios, and their table.

Starts a private stack (a database of its own on the local PostgreSQL, a private Redis, a Tansu
broker, the Payment and Theater peers, proxies to cut them) and two `booking serve` replicas,
runs every scenario (races, outages, partitions, crashes at each saga step), prints one row per
scenario and exits non-zero when a must-be-zero column is not zero: double bookings, events lost,
events doubled, 5xx (a 503 with Retry-After is counted apart, and allowed only while a part a
booking needs is away), violations and leftovers. `redelivered` is shown, not required to be
zero: see the note printed under the table. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from booking.ports.faults import Step
from tests.reliability.checker import REFETCHED
from tests.reliability.scenarios import (
    Row,
    Size,
    crash_under_load,
    part_outage,
    race,
    race_without_redis,
)
from tests.reliability.stack import OUTAGE_PARTS, Replica, Stack
from tests.support.postgres import _find_server

COLUMNS = (
    ("scenario", 30),
    ("requests", 8),
    ("faults", 6),
    ("double bookings", 15),
    ("events lost", 11),
    ("events doubled", 14),
    ("redelivered", 11),
    ("5xx", 5),
    ("503+Retry-After", 15),
    ("violations", 10),
    ("leftovers", 9),
    ("bookings (C/F/X)", 16),
)

Scenario = Callable[[Stack, list[Replica]], Awaitable[Row]]


def catalogue(size: Size, crash_size: Size) -> list[tuple[str, Scenario]]:
    # Outages need free seats while the part is away: a larger hall than the races.
    outage_size = Size(users=size.users, spread=size.spread, rows=5, columns=10)
    scenarios: list[tuple[str, Scenario]] = [
        ("race", lambda s, r: race(s, r, size)),
        ("race-redis", lambda s, r: race_without_redis(s, r, size)),
    ]
    for index, part in enumerate(OUTAGE_PARTS):
        scenarios.append(
            (
                f"outage-{part}",
                lambda s, r, p=part, i=index: part_outage(s, r, outage_size, p, seed=40 + i),
            )
        )
    for index, part in enumerate(("postgres", "payment", "theater", "broker")):
        scenarios.append(
            (
                f"partition-{part}",
                lambda s, r, p=part, i=index: part_outage(
                    s, r, outage_size, p, hang=True, seed=50 + i
                ),
            )
        )
    for index, step in enumerate(Step):
        scenarios.append(
            (
                f"crash-{step.value}",
                lambda s, r, st=step, i=index: crash_under_load(s, r, crash_size, st, seed=60 + i),
            )
        )
    return scenarios


def render(rows: list[Row]) -> str:
    header = " | ".join(name.ljust(width) for name, width in COLUMNS)
    lines = [header, "-+-".join("-" * width for _, width in COLUMNS)]
    for row in rows:
        f = row.findings
        booked = f"{f.bookings['CONFIRMED']}/{f.bookings['FAILED']}/{f.bookings['CANCELLED']}"
        cells = (
            row.scenario, f.requests, f.faults, f.double_bookings, f.events_lost,
            f.events_doubled, f.redelivered, f.five_xx, f.retry_503, f.violations, f.leftovers,
            booked,
        )  # fmt: skip
        lines.append(" | ".join(str(c).ljust(w) for c, (_, w) in zip(cells, COLUMNS, strict=True)))
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    size = Size(users=args.users, spread=args.spread)
    crash_size = Size(users=max(20, args.users // 5), spread=4.0, rows=2, columns=10)
    chosen = [
        (name, run)
        for name, run in catalogue(size, crash_size)
        if not args.only or any(part in name for part in args.only)
    ]
    workdir = Path(tempfile.mkdtemp(prefix="booking-reliability-"))
    print(f"reliability: working in {workdir}", file=sys.stderr, flush=True)
    stack = Stack(workdir, await _find_server())
    rows: list[Row] = []
    started = time.monotonic()
    try:
        await stack.start()
        replicas = [stack.replica("a"), stack.replica("b")]
        await asyncio.gather(*(asyncio.to_thread(r.start) for r in replicas))
        for name, run in chosen:
            began = time.monotonic()
            row = await run(stack, replicas)
            rows.append(row)
            f = row.findings
            print(
                f"reliability: {name} done in {time.monotonic() - began:.0f} s "
                f"({f.requests} requests, {row.settle})",
                file=sys.stderr,
                flush=True,
            )
            if REFETCHED[0]:
                print(
                    f"  (checker re-read {REFETCHED[0]} records after rebalances)", file=sys.stderr
                )
                REFETCHED[0] = 0
            for problem in f.problems:
                print(f"  {problem}", file=sys.stderr, flush=True)
    finally:
        await stack.close()
    print(render(rows))
    print(f"\n{len(rows)} scenarios in {time.monotonic() - started:.0f} s; logs in {workdir}")
    failed = [r.scenario for r in rows if not r.findings.clean]
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    print("all must-be-zero columns are zero")
    if any(r.findings.redelivered for r in rows):
        print(
            "redelivered: an event the relay published again after a publish of unknown outcome "
            "(a timeout while the broker was cut off) was stored twice; at-least-once allows "
            "it, but the Notification Service does not deduplicate by eventId."
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.report", description=__doc__)
    parser.add_argument("--users", type=int, default=200, help="customers per load scenario")
    parser.add_argument("--spread", type=float, default=12.0, help="seconds of arrivals")
    parser.add_argument(
        "--only", nargs="*", help="run only scenarios whose name contains one of these"
    )
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
