"""Micro-benchmarks behind bench/results/PROFILE.md: the cost of one peer call and one write.

`python -m bench.micro http URL` posts Theater verify calls with the service's peer client
(httpx over aiohttp) and with httpx's own transport; `python -m bench.micro sql DATABASE_URL`
runs a booking's one-statement write as the service sends it (`UnitOfWorkFactory.write`: a
connection from SQLAlchemy's pool, no SQLAlchemy `Connection`), inside a unit of work (the
`Connection` of `engine.connect()` around it), then on asyncpg's pool and on a connection per
task, with `SELECT 1` as the floor. Each prints calls/s and the CPU time of this process per
call (one asyncio process, 16 concurrent tasks), so the client cost is isolated.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import resource
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

CONCURRENCY = 16


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(name: str, call: Callable[[int], Awaitable[Any]], seconds: float) -> None:
    stop_at = time.monotonic() + seconds
    done = [0]

    async def worker(w: int) -> None:
        i = 0
        while time.monotonic() < stop_at:
            await call(w * 1_000_000 + i)
            i += 1
            done[0] += 1

    cpu0, t0 = _cpu(), time.monotonic()
    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
    cpu, wall = _cpu() - cpu0, time.monotonic() - t0
    per_call = cpu / max(done[0], 1) * 1e6
    print(
        f"{name:58} {done[0] / wall:8.0f} calls/s  {per_call:6.0f} µs CPU/call  "
        f"({cpu / wall:.2f} cores)"
    )


async def http(url: str, seconds: float) -> None:
    import httpx

    body = {"showId": 1, "seatIds": [1, 2]}
    headers = {"X-User-Id": "7", "X-User-Name": "7_x", "X-User-Roles": "ROLE_SERVICE_ACCOUNT"}
    target = url.rstrip("/") + "/api/v1/shows/internal/seats/verify"
    async with httpx.AsyncClient() as seed:
        await seed.post(url.rstrip("/") + "/__control/shows", json={"showId": 1, "rows": 2})
    from booking.adapters.http.transport import peer_client

    clients = (
        ("the service's peer client (httpx over aiohttp)", peer_client()),
        (
            "httpx with its own transport (httpcore), pool of 64",
            httpx.AsyncClient(limits=httpx.Limits(max_connections=64)),
        ),
    )
    for label, client in clients:
        async with client:

            async def call(_: int, client: httpx.AsyncClient = client) -> None:
                response = await client.post(target, json=body, headers=headers, timeout=5)
                response.raise_for_status()

            await measure(label, call, 1.0)  # fill the pool first
            await measure(label, call, seconds)


async def sql(url: str, seconds: float) -> None:
    """A booking's first write (`UnitOfWorkFactory.write`: one statement, no BEGIN) through the
    service's path, then the same statement below it, to split the pool's cost from the
    statement's: SQLAlchemy's pool bare and under a `Connection`, asyncpg's pool, no pool, and
    `SELECT 1` as the floor."""
    import asyncpg

    from booking.adapters.sql import SqlUnitOfWorkFactory, create_engine
    from booking.adapters.sql.repository import write_plain
    from booking.domain.booking import Booking, Seat, SeatType
    from booking.domain.money import Money
    from booking.ports.repository import AuditEntry, BookingWrite

    now = datetime.now(UTC)
    price = Money.from_major(150, "INR")
    # Ids above any the service draws; a run never repeats one.
    ids = itertools.count(9_000_000_000_000 + int(time.time() * 1000) % 1_000_000_000 * 1000)

    def fresh(_: int) -> BookingWrite:
        booking_id = next(ids)
        seats = [Seat(s, f"1-{s}", SeatType.SILVER, price) for s in (1, 2)]
        booking = Booking.open(
            booking_id=booking_id,
            user_id=7,
            show_id=booking_id,
            seats=seats,
            hold_expires_at=now + timedelta(minutes=5),
            now=now,
        )
        booking.pull_events()
        audit = AuditEntry(booking_id, "user:7", now, None, booking.status, None, False)
        return BookingWrite(booking, None, (), audit)

    engine = create_engine(url, pool_size=CONCURRENCY, max_overflow=0)
    uow = SqlUnitOfWorkFactory(engine)

    async def service(n: int) -> None:
        await uow.write(fresh(n))

    async def in_unit_of_work(n: int) -> None:
        async with uow() as block:
            await write_plain(await block.driver(write=False), fresh(n))

    await measure("UnitOfWorkFactory.write (SQLAlchemy pool)", service, 1.0)
    await measure("UnitOfWorkFactory.write (SQLAlchemy pool)", service, seconds)
    await measure("the statement in a unit of work (engine.connect)", in_unit_of_work, seconds)
    await engine.dispose()

    async def no_reset(conn: Any) -> None:
        """Nothing to reset: the plain statements set no session state."""

    raw_url = url.replace("postgresql+asyncpg://", "postgresql://")
    for label, reset in (("reset query on release", None), ("without reset", no_reset)):
        pool = await asyncpg.create_pool(
            raw_url, min_size=CONCURRENCY, max_size=CONCURRENCY, reset=reset
        )

        async def pooled(n: int, pool: Any = pool) -> None:
            async with pool.acquire() as conn:
                await write_plain(conn, fresh(n))

        await measure(f"the statement, asyncpg pool ({label})", pooled, seconds)
        await pool.close()

    connections = [await asyncpg.connect(raw_url) for _ in range(CONCURRENCY)]

    async def own_connection(n: int) -> None:
        await write_plain(connections[n // 1_000_000], fresh(n))

    async def select_one(n: int) -> None:
        await connections[n // 1_000_000].fetchval("SELECT 1")

    await measure("the statement, a connection per task (no pool)", own_connection, seconds)
    await measure("SELECT 1, a connection per task (no pool)", select_one, seconds)
    for conn in connections:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__)
    parser.add_argument("what", choices=("http", "sql"))
    parser.add_argument("target", help="Theater peer URL (http) or database URL (sql)")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    import uvloop

    uvloop.run((http if args.what == "http" else sql)(args.target, args.seconds))


if __name__ == "__main__":
    main()
