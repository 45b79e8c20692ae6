"""Fault scenarios: load on the replicas while a part is cut, a replica crashes or Redis stops;
then the checker's findings for the show the scenario used."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

from booking.ports.faults import Step
from tests.reliability.checker import Findings, check, snapshot, wait_settled
from tests.reliability.load import Load, Plan
from tests.reliability.stack import BASE, Replica, Stack, gateway_headers

Disturbance = Callable[[Load], Awaitable[int]]
CRASH = "BOOKING_FAULT_CRASH_AT"


@dataclass
class Row:
    scenario: str
    findings: Findings
    settle: str


@dataclass(frozen=True, slots=True)
class Size:
    users: int = 200
    spread: float = 12.0
    rows: int = 3
    columns: int = 10


_next_user = [100_000]


def _users(count: int) -> int:
    first = _next_user[0]
    _next_user[0] += count + 1000
    return first


async def run_scenario(
    stack: Stack,
    replicas: Sequence[Replica],
    name: str,
    size: Size,
    disturb: Disturbance | None = None,
    *,
    allow_503: bool = False,
    redis_up_at_check: bool = True,
    seed: int = 1,
) -> Row:
    """Load the replicas with `size` customers on a new show, run `disturb` beside the load,
    wait until the show settled (bounded), and check everything."""
    assert stack.payment is not None
    show_id, seats = stack.new_show(size.rows, size.columns)
    plan = Plan(
        show_id, seats, users=size.users, spread=size.spread, first_user=_users(size.users),
        seed=seed,
    )  # fmt: skip
    load = Load(plan, replicas, stack.payment.url, stack.timing)
    running = asyncio.create_task(load.run())
    faults = 0
    try:
        if disturb is not None:
            faults = await disturb(load)
    finally:
        history = await running
    state = await wait_settled(stack, show_id, stack.timing.settle_bound)
    snap = await snapshot(stack, show_id, redis_up=redis_up_at_check)
    findings = check(snap, history, allow_503=allow_503, faults=faults)
    if state != "settled":
        findings.add("leftovers", 1, f"the show did not settle: {state}")
    for replica in replicas:
        if replica.process is None or replica.process.poll() is not None:
            findings.add("violations", 1, f"replica {replica.name} is not running at the end")
        elif not await _books(stack, replica):
            findings.add("violations", 1, f"replica {replica.name} does not book any more")
    return Row(name, findings, state)


async def _books(stack: Stack, replica: Replica) -> bool:
    """Recovered by itself: a fresh seat books (201) and cancels (200) on this replica now."""
    show_id, seats = stack.new_show(1, 1)
    headers = gateway_headers(_users(1))
    async with httpx.AsyncClient(base_url=replica.url, timeout=20) as http:
        created = await http.post(BASE, json={"showId": show_id, "seatIds": seats}, headers=headers)
        if created.status_code != 201:
            return False
        cancelled = await http.post(f"{BASE}/{created.json()['bookingId']}/cancel", headers=headers)
    return cancelled.status_code == 200


# --- disturbances -----------------------------------------------------------------------------


def outage(
    stack: Stack, part: str, at: float, lasting: float, *, hang: bool = False
) -> Disturbance:
    """`part` stopped `at` seconds into the load and started again `lasting` seconds later.
    Redis is really stopped (its holds are lost, as in a restart without persistence); the
    others are cut at their proxy (connections reset and refused), keeping their data. With
    `hang`, the proxy keeps connections open and moves no byte instead (a partition: callers
    meet their timeouts, not a refusal)."""

    async def disturb(_: Load) -> int:
        await asyncio.sleep(at)
        if hang:
            await asyncio.to_thread(stack.proxies[part].hang)
        else:
            await asyncio.to_thread(_stop, stack, part)
        await asyncio.sleep(lasting)
        await asyncio.to_thread(_start, stack, part)
        return 1

    return disturb


def redis_stops(stack: Stack, at: float) -> Disturbance:
    """Redis stopped `at` seconds into the load, not started again during the scenario."""

    async def disturb(_: Load) -> int:
        await asyncio.sleep(at)
        await asyncio.to_thread(_stop, stack, "redis")
        return 1

    return disturb


def crash(replica: Replica, bound: float) -> Disturbance:
    """Wait until the armed replica kills itself, then restart it without the fault (while the
    load goes on against the other replicas)."""

    async def disturb(_: Load) -> int:
        code = await asyncio.to_thread(replica.wait_exit, bound)
        if code is None:
            return 0  # never reached its step: the scenario reports no fault injected
        await asyncio.to_thread(replica.restart, **{CRASH: ""})
        return 1

    return disturb


def _stop(stack: Stack, part: str) -> None:
    if part == "redis":
        assert stack.redis is not None
        stack.redis.stop()
    else:
        stack.proxies[part].down()


def _start(stack: Stack, part: str) -> None:
    if part == "redis":
        assert stack.redis is not None
        stack.redis.start()
    else:
        stack.proxies[part].up()


# --- the catalogue ----------------------------------------------------------------------------


async def race(stack: Stack, replicas: Sequence[Replica], size: Size) -> Row:
    return await run_scenario(stack, replicas, "race: 2 replicas", size, seed=11)


async def race_without_redis(stack: Stack, replicas: Sequence[Replica], size: Size) -> Row:
    try:
        return await run_scenario(
            stack,
            replicas,
            "race: Redis stopped halfway",
            size,
            redis_stops(stack, size.spread / 2),
            redis_up_at_check=False,
            seed=12,
        )
    finally:
        await asyncio.to_thread(_start, stack, "redis")


# Which outages may answer 503: the parts a booking cannot be made without.
REQUIRED = {"postgres": True, "payment": True, "theater": True, "redis": False, "broker": False}


async def part_outage(
    stack: Stack,
    replicas: Sequence[Replica],
    size: Size,
    part: str,
    *,
    hang: bool = False,
    seed: int = 20,
) -> Row:
    """The part away from 20 % to 60 % of the arrivals, while seats are still free (a sold-out
    hall is refused from the holds alone and would hardly need the part)."""
    # A partition lasts past the service's own bounds (pool wait 5 s, statement 10 s), so that
    # they, not the end of the partition, end the waiting requests.
    lasting = 14.0 if hang else size.spread * 0.4
    disturb = outage(stack, part, at=size.spread * 0.2, lasting=lasting, hang=hang)
    name = f"{'partition' if hang else 'outage'}: {part}"
    return await run_scenario(
        stack, replicas, name, size, disturb, allow_503=REQUIRED[part], seed=seed
    )


async def crash_under_load(
    stack: Stack, replicas: Sequence[Replica], size: Size, step: Step, *, seed: int = 30
) -> Row:
    """Replica 0 armed to SIGKILL itself at `step`, customers on both replicas; it is
    restarted without the fault once dead."""
    armed = replicas[0]
    await asyncio.to_thread(armed.restart, **{CRASH: step.value})
    try:
        return await run_scenario(
            stack,
            replicas,
            f"crash: {step.value}",
            size,
            crash(armed, size.spread + stack.timing.hold_ttl + 10),
            seed=seed,
        )
    finally:
        if armed.env.get(CRASH):
            await asyncio.to_thread(armed.restart, **{CRASH: ""})
