"""`python -m bench.run`: the on-sale benchmark of the booking service and its references.

Starts everything itself (a fresh PostgreSQL database, the Kafka-compatible broker, the Payment
and Theater peers, `booking serve`, a bare Litestar app), measures, stops everything, and writes
bench/results/RESULTS.md, results.json and throughput_p99.png. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import profile as profile_summary
from bench import refs, report
from bench.loadgen import Record, run_wrk
from bench.stack import (
    ROOT,
    VENV_BIN,
    BenchError,
    CpuMeter,
    Peer,
    Proc,
    Service,
    dump_json,
    fresh_database,
    psql,
    redis_cli,
    seed_show,
    service_env,
    start_bare,
    start_broker,
    start_peer,
    start_service,
    theater_seats,
)

BASE = "/api/v1/bookings"
SCENARIOS = ("refs", "onsale", "held", "steady", "reads", "holdsoff")
# Open-loop rates, as shares of the best closed-loop booking rate (the last one: the p99 goal).
OPEN_LOOP_SHARES = (0.25, 0.5, 0.8)

# Frames whose inclusive share the profile summary lists (the steps of a create and a read).
FOCUS = [
    "BookingController.create",
    "CreateBooking.__call__",
    "HttpTheaterCatalog.seats",
    "RedisSeatLock.acquire",
    "CreateBooking._insert",
    "HttpTheaterCatalog.lock",
    "HttpPaymentGateway.create_checkout",
    "Transitions.apply",
    "SqlOutboxStore",
    "Reconciler",
    "_request_context",
    "structlog",
    "InstrumentedTransport",
    "BookingController.get_one",
    "UnitOfWorkFactory.get",
    "UnitOfWorkFactory.write",
    "_Checkout",
]


@dataclass
class Options:
    duration: float
    warmup: float
    levels: list[int]
    onsale_clients: int
    onsale_limit: float
    hall: int
    workers: int
    pool_size: int
    pg_clients: int
    only: set[str]
    out: Path
    keep: bool
    profile: bool
    quick: bool
    stack_only: float | None
    access_log: bool


def parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short smoke run (about 2 min)")
    parser.add_argument("--duration", type=float, help="seconds per measurement (default 8)")
    parser.add_argument("--levels", help="steady-booking concurrencies, e.g. 4,16,64")
    parser.add_argument("--onsale-clients", type=int, help="concurrent clients (default 64)")
    parser.add_argument(
        "--onsale-limit", type=float, default=45.0, help="max seconds an on-sale may take"
    )
    parser.add_argument("--hall", type=int, default=1000, help="seats in the on-sale hall")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (service, bare)")
    parser.add_argument("--pool-size", type=int, default=20, help="BOOKING_DATABASE_POOL_SIZE")
    parser.add_argument("--pg-clients", type=int, default=16, help="pgbench clients")
    parser.add_argument(
        "--access-log", action="store_true", help="keep the service's per-request log line"
    )
    parser.add_argument(
        "--only", help=f"comma-separated subset of {','.join(SCENARIOS)} (default: all)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--keep", action="store_true", help="keep the database and the logs")
    parser.add_argument(
        "--profile", action="store_true", help="also record py-spy profiles of the service"
    )
    parser.add_argument(
        "--stack-only",
        type=float,
        metavar="SECONDS",
        help="start the stack and the service, print their addresses, keep them up this long",
    )
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    only = set(SCENARIOS) if not args.only else {s.strip() for s in args.only.split(",")}
    unknown = only - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    levels = args.levels or ("4,32" if quick else "1,4,16,64")
    return Options(
        duration=args.duration or (3.0 if quick else 8.0),
        warmup=0.5 if quick else 1.0,
        levels=[int(x) for x in levels.split(",")],
        onsale_clients=args.onsale_clients or (32 if quick else 64),
        onsale_limit=args.onsale_limit,
        hall=args.hall,
        workers=args.workers,
        pool_size=args.pool_size,
        pg_clients=args.pg_clients,
        only=only,
        out=args.out,
        keep=args.keep,
        profile=args.profile,
        quick=quick,
        stack_only=args.stack_only,
        access_log=args.access_log,
    )


# --- the run ------------------------------------------------------------------------------------


class Bench:
    def __init__(self, options: Options, workdir: Path, database: str) -> None:
        self.o = options
        self.work = workdir
        self.db = database
        self.results: dict[str, Any] = {
            "options": {
                "duration_s": options.duration,
                "levels": options.levels,
                "onsale_clients": options.onsale_clients,
                "hall": options.hall,
                "workers": options.workers,
                "pool_size": options.pool_size,
                "quick": options.quick,
                "access_log": options.access_log,
            },
            "machine": machine(),
        }
        self.procs: list[Proc] = []
        self.theater: Peer | None = None
        self.payment: Peer | None = None
        self.kafka = ""
        self.service: Service | None = None
        self.next_show = 1000

    # --- helpers -----------------------------------------------------------------------------

    def show(self) -> int:
        self.next_show += 1
        return self.next_show

    def meter(self) -> CpuMeter:
        roots = {}
        if self.service is not None:
            roots["service"] = self.service.proc.pid
        for name, peer in (("theater", self.theater), ("payment", self.payment)):
            if peer is not None:
                roots[name] = peer.proc.pid
        for proc in self.procs:
            if proc.name == "broker" and proc.alive():
                roots["broker"] = proc.pid
        return CpuMeter(roots=roots, comms={"postgres": ("postgres",), "redis": ("redis-server",)})

    def wrk(self, target: str, name: str, **kwargs: Any) -> Record:
        env = kwargs.pop("env", {})
        return run_wrk(
            target + kwargs.pop("path", BASE),
            out=self.work / f"{name}.json",
            env={"BENCH_PATH": BASE, **env},
            **kwargs,
        )

    def log(self, message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)

    # --- the stack ---------------------------------------------------------------------------

    def start_stack(self) -> None:
        broker, self.kafka = start_broker(self.work)
        self.procs.append(broker)
        self.theater = start_peer("theater", self.work)
        self.procs.append(self.theater.proc)
        self.payment = start_peer("payment", self.work)
        self.procs.append(self.payment.proc)
        self.log(f"broker {self.kafka}, theater {self.theater.url}, payment {self.payment.url}")
        env = self.env(holds=True)
        migrate = subprocess.run(
            [str(VENV_BIN / "booking"), "migrate"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if migrate.returncode != 0:
            raise BenchError(f"booking migrate failed:\n{migrate.stdout}{migrate.stderr}")
        self.log(migrate.stdout.strip() or "migrated")

    def env(self, *, holds: bool) -> dict[str, str]:
        assert self.theater is not None
        assert self.payment is not None
        return service_env(
            database=self.db,
            kafka=self.kafka,
            payment=self.payment.url,
            theater=self.theater.url,
            holds=holds,
            pool_size=self.o.pool_size,
            data_dir=self.work / "data",
            access_log=self.o.access_log,
        )

    def start_service(self, *, holds: bool) -> Service:
        self.stop_service()
        name = "service" if holds else "service-holds-off"
        workers = self.results["options"].get("workers_effective", self.o.workers)
        try:
            self.service = start_service(name, self.env(holds=holds), workers, self.work)
        except BenchError as exc:
            if workers == 1:
                raise
            # uvicorn kills a worker whose startup (imports + lifespan) exceeds its 5 s health
            # check and starts another, which on a loaded machine can go on forever. Measure
            # one worker rather than nothing, and say so in the results.
            self.log(f"{name} did not start with {workers} workers ({exc}); retrying with 1")
            workers = 1
            self.results["options"]["workers_effective"] = 1
            self.service = start_service(name, self.env(holds=holds), workers, self.work)
        self.log(f"{name} on {self.service.url} ({workers} workers)")
        # Warm the pools (database, Redis, HTTP clients) of every worker before measuring.
        show = self.show()
        assert self.theater is not None
        seed_show(self.theater, show, 1, 4000)
        self.wrk(
            self.service.url,
            f"warmup-{name}",
            mode="steady",
            connections=8,
            duration=2,
            env={"BENCH_SHOW": str(show), "BENCH_FIRST_SEAT": "1", "BENCH_SEATS": "4000"},
        )
        return self.service

    def stop_service(self) -> None:
        if self.service is not None:
            self.service.proc.stop()
            self.service = None

    def stop_all(self) -> None:
        self.stop_service()
        for proc in reversed(self.procs):
            proc.stop(kill=proc.name == "broker")
        self.procs.clear()

    # --- references --------------------------------------------------------------------------

    def references(self) -> None:
        o = self.o
        bare = start_bare(o.workers, self.work)
        try:
            levels: list[dict[str, Any]] = []
            meter = CpuMeter(roots={"bare": bare.proc.pid})
            for c in o.levels:
                record = self.wrk(
                    bare.url,
                    f"bare-post-c{c}",
                    mode="steady",
                    connections=c,
                    duration=o.duration,
                    env={"BENCH_SHOW": "1", "BENCH_FIRST_SEAT": "1", "BENCH_SEATS": "1000000000"},
                    meter=meter,
                )
                levels.append(self.level(c, record))
                self.log(f"bare POST c={c}: {levels[-1]['ok_per_s']:.0f}/s")
            # The generator holds a fixed arrival rate: an open loop on the bare app at half its
            # best rate must come out at that rate with a low p99.
            rate = 0.5 * max(x["ok_per_s"] for x in levels)
            c = max(o.levels)
            record = self.wrk(
                bare.url,
                "bare-open",
                mode="steady",
                connections=c,
                duration=o.duration,
                rate=rate,
                env={"BENCH_SHOW": "1", "BENCH_FIRST_SEAT": "1", "BENCH_SEATS": "1000000000"},
                meter=meter,
            )
            open_loop = self.level(c, record)
            open_loop["target_rate"] = rate
            self.log(
                f"bare POST open loop at {rate:.0f}/s: {open_loop['ok_per_s']:.0f}/s, "
                f"p99 {open_loop['ok_p99_ms']:.1f} ms"
            )
            ids = self.work / "bare-ids.txt"
            ids.write_text("".join(f"{i} {100 + i % 50}\n" for i in range(1, 1001)))
            c = max(o.levels)
            record = self.wrk(
                bare.url,
                "bare-get",
                mode="read",
                connections=c,
                duration=o.duration,
                env={"BENCH_IDS": str(ids)},
                meter=meter,
            )
            read = self.level(c, record)
            self.log(f"bare GET c={c}: {read['ok_per_s']:.0f}/s")
        finally:
            bare.proc.stop()
        self.results["bare"] = {"post": levels, "get": read, "open_loop": open_loop}

        seconds = max(3, int(o.duration))
        self.results["pgbench"] = {}
        for script in ("booking", "create"):
            found = refs.pgbench(
                self.db, script, clients=o.pg_clients, seconds=seconds, workdir=self.work
            )
            self.results["pgbench"][script] = found
            self.log(f"pgbench {script}: {found['tps']:.0f} tps, p99 {found['p99_ms']:.1f} ms")
        # Leave the service's tables as the migrations made them.
        psql(self.db, "TRUNCATE bookings, booking_seats, audit_log, outbox")

        requests = 20000 if o.quick else 100000
        self.results["redis"] = {
            "benchmark_p1": refs.redis_benchmark(clients=50, pipeline=1, requests=requests),
            "benchmark_p16": refs.redis_benchmark(clients=50, pipeline=16, requests=requests * 4),
            "redis_py": refs.redis_py(64, seconds),
        }
        for name, found in self.results["redis"].items():
            self.log(f"redis {name}: {found['calls_per_s']:.0f} calls/s")
        redis_cli("FLUSHDB")

    def level(self, c: int, record: Record, *, warm: bool = True) -> dict[str, Any]:
        since = record.start + (self.o.warmup * 1e6 if warm else 0)
        found = record.stats(since=since)
        found["concurrency"] = c
        found["cpu"] = record.cpu
        return found

    # --- scenarios ---------------------------------------------------------------------------

    def onsale(self, key: str) -> None:
        """Many clients, 1-4 random seats each, until the hall is sold out."""
        assert self.service is not None
        assert self.theater is not None
        o = self.o
        show = self.show()
        seed_show(self.theater, show, 1, o.hall)
        claimed_sql = f"SELECT seat_id FROM booking_seats WHERE show_id = {show} AND claimed"
        progress = {"n": -1, "since": time.monotonic()}
        seatmap = self.work / f"{key}-seatmap.txt"
        seatmap.write_text("".join(f"{s}\n" for s in range(1, o.hall + 1)))

        def sold_out() -> bool:
            claimed = {int(x) for x in psql(self.db, claimed_sql).split()}
            # The seat map the clients look at: what the database has not claimed yet.
            fresh = seatmap.with_suffix(".tmp")
            fresh.write_text("".join(f"{s}\n" for s in range(1, o.hall + 1) if s not in claimed))
            fresh.replace(seatmap)
            n = len(claimed)
            if n != progress["n"]:
                progress.update(n=n, since=time.monotonic())
            # Sold out, or no seat sold for 5 s (the clients believe the rest is gone).
            return n >= o.hall or (n > 0 and time.monotonic() - progress["since"] > 5)

        record = self.wrk(
            self.service.url,
            key,
            mode="onsale",
            connections=o.onsale_clients,
            duration=o.onsale_limit,
            env={
                "BENCH_SHOW": str(show),
                "BENCH_FIRST_SEAT": "1",
                "BENCH_SEATS": str(o.hall),
                "BENCH_SEATMAP": str(seatmap),
            },
            meter=self.meter(),
            stop_when=sold_out,
            poll=0.2,
        )
        last_ok = record.last_ok()
        found = record.stats(until=last_ok)
        found["after_sold_out"] = record.stats(since=last_ok)
        found["clients"] = o.onsale_clients
        found["cpu"] = record.cpu
        time.sleep(1.0)  # let in-flight sagas finish before checking
        found["check"] = self.check_oversold(show, record)
        self.results[key] = found
        check = found["check"]
        self.log(
            f"{key}: {found['ok_per_s']:.0f} ok/s, {found['rej_per_s']:.0f} rejected/s in "
            f"{found['window_s']:.1f} s; sold {check['live_seats']}/{o.hall}, "
            f"oversold {check['oversold']}"
        )

    def check_oversold(self, show: int, record: Record) -> dict[str, Any]:
        """Oversold seats from the database (a seat in two live bookings) and the Theater
        (a seat of a live booking the Theater would still sell)."""
        assert self.theater is not None
        live = "('PENDING', 'CONFIRMED')"
        rows = psql(
            self.db,
            "SELECT s.seat_id, count(*) FROM booking_seats s "
            f"JOIN bookings b ON b.id = s.booking_id WHERE b.show_id = {show} "
            f"AND b.status IN {live} GROUP BY s.seat_id",
        )
        per_seat = {
            int(a): int(b) for a, b in (line.split("|") for line in rows.splitlines() if line)
        }
        statuses = psql(
            self.db, f"SELECT status, count(*) FROM bookings WHERE show_id = {show} GROUP BY 1"
        )
        theater = theater_seats(self.theater, show)
        sellable = [s for s in per_seat if theater.get(s) == "AVAILABLE"]
        locked = {s for s, st in theater.items() if st in ("LOCKED", "BOOKED")}
        double = sum(n - 1 for n in per_seat.values() if n > 1)
        return {
            "live_seats": len(per_seat),
            "double_claimed_seats": double,
            "live_seats_theater_would_sell": len(sellable),
            "oversold": double + len(sellable),
            "theater_locked": len(locked),
            "theater_locked_without_live_booking": len(locked - set(per_seat)),
            "seats_in_201_answers": record.stats()["seats_ok"],
            "bookings_by_status": dict(line.split("|") for line in statuses.splitlines() if line),
        }

    def held(self) -> None:
        """Every seat held in Redis by another booking: the rejection path alone."""
        assert self.service is not None
        assert self.theater is not None
        o = self.o
        show = self.show()
        seed_show(self.theater, show, 1, o.hall)
        self.hold_every_seat(show)
        c = max(o.levels)
        record = self.wrk(
            self.service.url,
            "held",
            mode="held",
            connections=c,
            duration=o.duration,
            env={"BENCH_SHOW": str(show), "BENCH_FIRST_SEAT": "1", "BENCH_SEATS": str(o.hall)},
            meter=self.meter(),
        )
        found = self.level(c, record)
        self.results["held"] = found
        self.log(
            f"held seats: {found['rej_per_s']:.0f} rejected/s, p99 {found['rej_p99_ms']} ms, "
            f"{found['ok_n']} booked (must be 0)"
        )

    def hold_every_seat(self, show: int) -> None:
        lines = "".join(
            f"SET booking:hold:{{show:{show}}}:seat:{s} bench-foreign-owner PX 600000\n"
            for s in range(1, self.o.hall + 1)
        )
        redis_cli("--pipe", stdin=lines)

    def steady(self, key: str = "steady") -> None:
        """Distinct seats (no conflicts) at rising concurrency, then open loops at rising rates
        up to 80% of the best closed-loop rate."""
        assert self.service is not None
        assert self.theater is not None
        o = self.o
        levels = []
        for c in o.levels:
            show = self.show()
            seats = int(max(20000, 2500 * o.duration) // c * c)
            seed_show(self.theater, show, 1, seats)
            record = self.wrk(
                self.service.url,
                f"{key}-c{c}",
                mode="steady",
                connections=c,
                duration=o.duration,
                env={"BENCH_SHOW": str(show), "BENCH_FIRST_SEAT": "1", "BENCH_SEATS": str(seats)},
                meter=self.meter(),
            )
            levels.append(self.level(c, record))
            found = levels[-1]
            self.log(
                f"{key} c={c}: {found['ok_per_s']:.0f} booked/s, p50 {found['ok_p50_ms']} ms, "
                f"p99 {found['ok_p99_ms']} ms, errors {found['err_n']}"
            )
        self.results[key] = {"levels": levels}
        best = max(levels, key=lambda x: x["ok_per_s"])
        # The latency curve: a constant arrival rate at fractions of the best closed-loop rate;
        # the last, 80%, is the one the p99 goal names.
        curve = []
        for share in OPEN_LOOP_SHARES:
            rate = share * best["ok_per_s"]
            if rate <= 0:
                return
            found = self.open_loop(key, rate)
            found["share"] = share
            curve.append(found)
        self.results[key]["open_loop_curve"] = curve
        self.results[key]["open_loop"] = curve[-1]

    def open_loop(self, key: str, rate: float) -> dict[str, Any]:
        c = max(self.o.levels)
        show = self.show()
        seats = int(max(20000, rate * self.o.duration * 3) // c * c)
        assert self.service is not None
        assert self.theater is not None
        seed_show(self.theater, show, 1, seats)
        record = self.wrk(
            self.service.url,
            f"{key}-open-{rate:.0f}",
            mode="steady",
            connections=c,
            duration=self.o.duration,
            rate=rate,
            env={"BENCH_SHOW": str(show), "BENCH_FIRST_SEAT": "1", "BENCH_SEATS": str(seats)},
            meter=self.meter(),
        )
        found = self.level(c, record)
        found["target_rate"] = rate
        self.log(
            f"{key} open loop at {rate:.0f}/s: {found['ok_per_s']:.0f} booked/s, "
            f"p50 {found['ok_p50_ms']} ms, p99 {found['ok_p99_ms']} ms"
        )
        return found

    def reads(self) -> None:
        assert self.service is not None
        rows = psql(self.db, "SELECT id, user_id FROM bookings ORDER BY random() LIMIT 5000")
        if not rows:
            raise BenchError("no bookings to read (run the steady scenario first)")
        ids = self.work / "ids.txt"
        ids.write_text(rows.replace("|", " ") + "\n")
        c = max(self.o.levels)
        record = self.wrk(
            self.service.url,
            "reads",
            mode="read",
            connections=c,
            duration=self.o.duration,
            env={"BENCH_IDS": str(ids)},
            meter=self.meter(),
        )
        found = self.level(c, record)
        self.results["reads"] = found
        self.log(f"reads c={c}: {found['ok_per_s']:.0f}/s, p99 {found['ok_p99_ms']} ms")

    @contextlib.contextmanager
    def profiling(self, name: str) -> Iterator[None]:
        """py-spy over the service's process tree (its workers too) while the block runs."""
        assert self.service is not None
        out = self.o.out / "profile" / "raw" / f"{name}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        # The raw stacks are large and differ every run: only the summary is kept in git.
        (out.parent / ".gitignore").write_text("*\n")
        argv = [str(VENV_BIN / "py-spy"), "record", "--pid", str(self.service.proc.pid)]
        argv += ["--subprocesses", "--format", "raw", "--rate", "100", "--output", str(out)]
        spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)  # attached to every worker before the load starts
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)
            try:
                _, err = spy.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                spy.kill()
                _, err = spy.communicate()
            if not out.exists():
                raise BenchError(f"py-spy wrote no profile: {err.decode(errors='replace')[-800:]}")
            self.log(f"profile written to {out}")

    def profiled(self, name: str, mode: str, connections: int, env: dict[str, str]) -> None:
        """One wrk run of `mode` against the service while py-spy records it as `name`."""
        assert self.service is not None
        with self.profiling(name):
            self.wrk(
                self.service.url,
                f"profile-{name}",
                mode=mode,
                connections=connections,
                duration=self.o.duration,
                env={"BENCH_FIRST_SEAT": "1", **env},
            )

    def profile(self) -> None:
        """A separate pass under py-spy (sampling slows the service: no figure comes from it):
        successful bookings, rejections of held seats, and reads of those bookings."""
        assert self.service is not None
        assert self.theater is not None
        c = 16
        show = self.show()
        seats = int(max(20000, 2500 * self.o.duration) // c * c)
        seed_show(self.theater, show, 1, seats)
        self.profiled("create", "steady", c, {"BENCH_SHOW": str(show), "BENCH_SEATS": str(seats)})
        show = self.show()
        seed_show(self.theater, show, 1, self.o.hall)
        self.hold_every_seat(show)
        self.profiled("reject", "held", c, {"BENCH_SHOW": str(show), "BENCH_SEATS": "1000"})
        rows = psql(self.db, "SELECT id, user_id FROM bookings ORDER BY random() LIMIT 5000")
        ids = self.work / "profile-ids.txt"
        ids.write_text(rows.replace("|", " ") + "\n")
        self.profiled("read", "read", c, {"BENCH_IDS": str(ids)})
        summary = [
            profile_summary.summarise(self.o.out / "profile" / "raw" / f"{name}.txt", 25, FOCUS)
            for name in ("create", "reject", "read")
        ]
        (self.o.out / "profile" / "SUMMARY.txt").write_text("\n\n".join(summary) + "\n")

    def run(self) -> None:
        o = self.o
        self.start_stack()
        if o.stack_only is not None:
            service = self.start_service(holds=True)
            show = self.show()
            assert self.theater is not None
            seed_show(self.theater, show, 1, o.hall)
            print(f"service {service.url} (show {show}: seats 1-{o.hall})", flush=True)
            print(" ".join(f"{k}={v}" for k, v in service.env.items()), flush=True)
            time.sleep(o.stack_only)
            return
        if "refs" in o.only:
            self.references()
        redis_cli("FLUSHDB")
        self.start_service(holds=True)
        if "onsale" in o.only:
            self.onsale("onsale")
        if "held" in o.only:
            self.held()
        if "steady" in o.only or "reads" in o.only:
            self.steady()
        if "reads" in o.only:
            self.reads()
        if o.profile:
            self.profile()
        if "holdsoff" in o.only:
            self.start_service(holds=False)
            self.onsale("onsale_holds_off")
        self.stop_service()


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    with contextlib.suppress(OSError):
        info["load_before"] = Path("/proc/loadavg").read_text().split()[:3]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        info["wrk"] = " ".join(
            subprocess.run(
                ["wrk", "-v"], capture_output=True, text=True, check=False
            ).stdout.split()[:3]
        )
    return info


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    # SIGTERM (a CI timeout, `kill`) and SIGINT stop the run the way Ctrl-C does: the stack's
    # processes, the database and Redis's keys are cleaned up. A shell starts a background
    # job with SIGINT ignored, so its handler is set here too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    tools = subprocess.run([str(ROOT / "scripts" / "ensure-bench-tools")], check=False)
    if tools.returncode != 0:
        print("bench: the load tools are missing (scripts/ensure-bench-tools)", file=sys.stderr)
        return 1
    started = time.monotonic()
    name = f"booking_bench_{os.getpid()}"
    workdir = Path(tempfile.mkdtemp(prefix="booking-bench-"))
    print(f"[bench] work directory {workdir}, database {name}", flush=True)
    bench: Bench | None = None
    try:
        redis_cli("FLUSHDB")
        with fresh_database(name, keep=options.keep) as database:
            bench = Bench(options, workdir, database)
            try:
                bench.run()
            finally:
                bench.stop_all()
                redis_cli("FLUSHDB")
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        print(f"bench: logs in {workdir}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bench: interrupted; logs in {workdir}", file=sys.stderr)
        return 130
    assert bench is not None
    if options.stack_only is not None:
        return 0
    bench.results["elapsed_s"] = time.monotonic() - started
    bench.results["machine"]["load_after"] = Path("/proc/loadavg").read_text().split()[:3]
    options.out.mkdir(parents=True, exist_ok=True)
    dump_json(options.out / "results.json", bench.results)
    table = report.markdown(bench.results)
    (options.out / "RESULTS.md").write_text(table)
    report.plot(bench.results, options.out / "throughput_p99.png")
    print(table)
    print(f"[bench] done in {bench.results['elapsed_s']:.0f} s; results in {options.out}")
    if not options.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
