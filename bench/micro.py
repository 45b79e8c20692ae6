"""Micro-benchmarks behind bench/results/PROFILE.md: the cost of one peer call and one insert.

`python -m bench.micro http URL` posts Theater verify calls with the service's peer client
(httpx over aiohttp) and with httpx's own transport; `python -m bench.micro sql DATABASE_URL` runs
the create transaction through the service's SqlUnitOfWork (SQLAlchemy Core) and as the same
statements on a bare asyncpg connection pool. Each prints calls/s and the CPU time of this
process per call (one asyncio process, 16 concurrent tasks), so the client cost is isolated.
"""

from __future__ import annotations

import argparse
import asyncio
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
    import asyncpg

    from booking.adapters.sql import SqlUnitOfWorkFactory, create_engine
    from booking.domain.booking import Booking, Seat, SeatType
    from booking.domain.money import Money
    from booking.ports.repository import AuditEntry

    now = datetime.now(UTC)
    engine = create_engine(url, pool_size=CONCURRENCY, max_overflow=0)
    uow = SqlUnitOfWorkFactory(engine)
    price = Money.from_major(150, "INR")

    def booking(n: int) -> Booking:
        seats = [Seat(s, f"1-{s}", SeatType.SILVER, price) for s in (1, 2)]
        return Booking.open(
            booking_id=n + 1,
            user_id=7,
            show_id=10_000_000 + n,
            seats=seats,
            hold_expires_at=now + timedelta(minutes=5),
            now=now,
        )

    async def core(n: int) -> None:
        b = booking(n)
        async with uow() as tx:
            await tx.bookings.add(b)
            await tx.audit.record(AuditEntry(b.booking_id, "user:7", now, None, b.status, None))
            await tx.commit()

    await measure("SqlUnitOfWork: add + audit + commit (SQLAlchemy Core)", core, seconds)
    await engine.dispose()

    raw_url = url.replace("postgresql+asyncpg://", "postgresql://")
    pool = await asyncpg.create_pool(raw_url, min_size=CONCURRENCY, max_size=CONCURRENCY)
    insert_booking = (
        "INSERT INTO bookings (id, user_id, show_id, status, total_minor, currency, "
        "hold_expires_at, refund_required, version, created_at, updated_at) VALUES "
        "($1, 7, $2, 'PENDING', 30000, 'INR', $3, false, 1, $4, $4) "
        "ON CONFLICT (id) DO NOTHING RETURNING id"
    )
    insert_seats = (
        "INSERT INTO booking_seats (booking_id, seat_id, position, show_id, seat_number, "
        "seat_type, price_minor, claimed) SELECT $1, s, s - 1, $2, '1-' || s, 'SILVER', 15000, "
        "true FROM unnest($3::bigint[]) AS s ON CONFLICT (show_id, seat_id) WHERE claimed "
        "DO NOTHING RETURNING seat_id"
    )
    insert_audit = (
        "INSERT INTO audit_log (booking_id, actor, at, to_status, refund_required) "
        "VALUES ($1, 'user:7', $2, 'PENDING', false)"
    )

    async def plain(n: int) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.fetchval(insert_booking, 5_000_000_000 + n, 20_000_000 + n, now, now)
            await conn.fetch(insert_seats, 5_000_000_000 + n, 20_000_000 + n, [1, 2])
            await conn.execute(insert_audit, 5_000_000_000 + n, now)

    await measure("asyncpg: the same three statements + commit", plain, seconds)
    await pool.close()


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
