"""Crash recovery: the server SIGKILLed at each step of the saga, then started again.

Five replicas start at once, each armed to kill itself at one step; a customer drives one
booking into each one's step, and each dies there. Then one of them starts again without any
fault and, sharing the database, Redis and broker, recovers all five bookings. Each test checks
one step's booking: CONFIRMED or FAILED within hold + grace, nothing left behind (hold, claim,
Theater lock), every event on the broker exactly once, and the restarted process alive."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from booking.ports.faults import Step
from tests.e2e.conftest import wait_for
from tests.reliability.checker import Findings, Snapshot, check, read_holds, snapshot, wait_settled
from tests.reliability.stack import BASE, Replica, Stack, gateway_headers, start_all

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.kafka]

CRASH = "BOOKING_FAULT_CRASH_AT"
USER = 4242


@dataclass
class Crash:
    """What one step's crash left, and how it ended."""

    step: Step
    show_id: int
    seats: list[int]
    exit_code: int | None
    answer: str
    booking_id: int | None
    holds_after_crash: dict[int, str] | None
    hold_ttls_ms: list[int]
    theater_after_crash: dict[int, str]
    settle: str
    snapshot: Snapshot
    findings: Findings
    alive_after_recovery: bool
    sold_again: bool | None = None


async def _provoke(
    replica: Replica, stack: Stack, step: Step, show_id: int, seats: list[int]
) -> tuple[str, int | None]:
    """Drive one booking into `step`; answers what the customer saw and the booking id (when
    the service answered one before dying)."""
    assert stack.payment is not None
    headers = gateway_headers(USER) | {"Idempotency-Key": f"crash-{step.value}-{show_id}"}
    body = {"showId": show_id, "seatIds": seats}
    async with httpx.AsyncClient(base_url=replica.url, timeout=20) as http:
        booking_id = None
        try:
            created = await http.post(BASE, json=body, headers=headers)
        except httpx.TransportError as exc:
            return f"no answer ({type(exc).__name__})", None
        if step is not Step.AFTER_CONFIRM_COMMIT:
            return f"answered {created.status_code}", None
        assert created.status_code == 201, created.text
        booking_id = int(created.json()["bookingId"])
        await asyncio.to_thread(stack.payment.pay, created.json()["paymentSessionId"])
        try:
            verified = await http.get(
                f"{BASE}/{booking_id}/verify-payment", headers=gateway_headers(USER)
            )
        except httpx.TransportError as exc:
            return f"no answer to verify-payment ({type(exc).__name__})", booking_id
        return f"verify-payment answered {verified.status_code}", booking_id


async def _ttls(stack: Stack, show_id: int, seats: list[int]) -> list[int]:
    assert stack.redis is not None
    client = aioredis.Redis.from_url(stack.redis.url)
    try:
        return [
            int(await client.pttl(f"booking:hold:{{show:{show_id}}}:seat:{seat}")) for seat in seats
        ]
    finally:
        await client.aclose()


@pytest.fixture(scope="module")
async def crashes(stack: Stack) -> AsyncIterator[dict[Step, Crash]]:
    """Every step crashed once, then one clean restart; each booking settled and checked."""
    assert stack.theater is not None and stack.redis is not None
    armed = {step: stack.replica(f"crash-{step.value}", **{CRASH: step.value}) for step in Step}
    await start_all(list(armed.values()))
    try:
        left: dict[Step, tuple[Any, ...]] = {}
        for step, replica in armed.items():
            show_id, all_seats = stack.new_show(1, 4)
            seats = all_seats[:2]
            answer, booking_id = await _provoke(replica, stack, step, show_id, seats)
            code = await asyncio.to_thread(replica.wait_exit, 30)
            holds = await read_holds(stack.redis.url, show_id)
            ttls = await _ttls(stack, show_id, seats)
            theater = await asyncio.to_thread(stack.theater.seat_statuses, show_id)
            left[step] = (show_id, seats, code, answer, booking_id, holds, ttls, theater)
        restarted = armed[Step.AFTER_HOLD]
        await asyncio.to_thread(restarted.restart, **{CRASH: ""})
        outcomes: dict[Step, Crash] = {}
        for step, (show_id, seats, *rest) in left.items():
            settle = await wait_settled(stack, show_id, stack.timing.settle_bound)
            if step is Step.AFTER_HOLD:
                await _holds_expire(stack, show_id)
            snap = await snapshot(stack, show_id)
            findings = check(snap, None, allow_503=False, faults=1)
            outcomes[step] = Crash(step, show_id, seats, *rest, settle, snap, findings, False)
        alive = restarted.process is not None and restarted.process.poll() is None
        for crash in outcomes.values():
            crash.alive_after_recovery = alive
        hold = outcomes[Step.AFTER_HOLD]
        hold.sold_again = await _sells(restarted, hold.show_id, hold.seats)
        yield outcomes
    finally:
        await asyncio.gather(*(asyncio.to_thread(r.stop) for r in armed.values()))


async def _holds_expire(stack: Stack, show_id: int) -> None:
    assert stack.redis is not None
    url = stack.redis.url

    async def gone() -> bool:
        return await read_holds(url, show_id) == {}

    bound = (stack.timing.hold_ttl + stack.timing.grace + 5) * 4
    await wait_for(gone, attempts=bound, pause=0.25, what="the orphan hold expiring")


async def _sells(replica: Replica, show_id: int, seats: list[int]) -> bool:
    async with httpx.AsyncClient(base_url=replica.url, timeout=10) as http:
        response = await http.post(
            BASE, json={"showId": show_id, "seatIds": seats}, headers=gateway_headers(USER + 1)
        )
    return response.status_code == 201


def _common(crash: Crash) -> dict[str, Any]:
    """What every step must show: killed by its fault, settled, clean, recovered and alive."""
    assert crash.exit_code == -signal.SIGKILL, (crash.step, crash.exit_code, crash.answer)
    assert crash.answer.startswith("no answer"), crash.answer
    assert crash.settle == "settled", crash.settle
    assert crash.findings.clean, crash.findings.problems
    assert crash.alive_after_recovery
    return {}


def _only_booking(crash: Crash) -> dict[str, Any]:
    (booking,) = crash.snapshot.bookings.values()
    return booking


def _events(crash: Crash, topic: str) -> list[dict[str, Any]]:
    return [r for r in crash.snapshot.records if r["topic"] == topic]


async def test_crash_after_hold_leaves_only_an_expiring_hold(
    crashes: dict[Step, Crash], stack: Stack
) -> None:
    """Killed between the Redis hold and the insert: no booking exists, the Theater never
    heard of it, the orphan hold carries its TTL (hold + grace), and once it expired the seats
    sell again."""
    crash = crashes[Step.AFTER_HOLD]
    _common(crash)
    assert crash.snapshot.bookings == {}
    assert crash.holds_after_crash and set(crash.holds_after_crash) == set(crash.seats)
    bound_ms = (stack.timing.hold_ttl + stack.timing.grace) * 1000
    assert all(0 < ttl <= bound_ms for ttl in crash.hold_ttls_ms), crash.hold_ttls_ms
    assert set(crash.snapshot.theater.values()) == {"AVAILABLE"}
    assert crash.snapshot.holds == {}
    assert crash.sold_again


async def test_crash_after_insert_expires_and_releases(crashes: dict[Step, Crash]) -> None:
    """Killed after the PENDING row committed: the reconciler fails it HOLD_EXPIRED, the claims
    and the hold go, and one booking_failed is announced."""
    crash = crashes[Step.AFTER_INSERT]
    _common(crash)
    booking = _only_booking(crash)
    assert (booking["status"], booking["failure_reason"]) == ("FAILED", "HOLD_EXPIRED")
    assert crash.theater_after_crash == dict.fromkeys(crash.theater_after_crash, "AVAILABLE")
    assert len(_events(crash, "booking_failed")) == 1
    assert crash.snapshot.holds == {}


async def test_crash_after_theater_lock_unlocks_the_theater(crashes: dict[Step, Crash]) -> None:
    """Killed with the seats LOCKED at the Theater: after the restart the booking fails
    HOLD_EXPIRED and the Theater has the seats AVAILABLE again."""
    crash = crashes[Step.AFTER_THEATER_LOCK]
    _common(crash)
    booking = _only_booking(crash)
    assert (booking["status"], booking["failure_reason"]) == ("FAILED", "HOLD_EXPIRED")
    assert {crash.theater_after_crash[s] for s in crash.seats} == {"LOCKED"}
    assert {crash.snapshot.theater[s] for s in crash.seats} == {"AVAILABLE"}
    assert len(_events(crash, "booking_failed")) == 1


async def test_crash_after_checkout_never_charges(crashes: dict[Step, Crash]) -> None:
    """Killed after the checkout opened but before its session was stored: the customer never
    saw the payment URL, the booking fails HOLD_EXPIRED and its seats come back; the orphan
    checkout stays unpaid."""
    crash = crashes[Step.AFTER_CHECKOUT]
    _common(crash)
    booking = _only_booking(crash)
    assert (booking["status"], booking["failure_reason"]) == ("FAILED", "HOLD_EXPIRED")
    assert booking["payment_session_id"] is None
    assert [s["paymentStatus"] for s in crash.snapshot.sessions] == ["PENDING"]
    assert {crash.snapshot.theater[s] for s in crash.seats} == {"AVAILABLE"}


async def test_crash_after_confirm_commit_finishes_the_sale(crashes: dict[Step, Crash]) -> None:
    """Killed right after the CONFIRMED commit, before answering: after the restart the relay
    books the seats at the Theater and announces booking_success exactly once."""
    crash = crashes[Step.AFTER_CONFIRM_COMMIT]
    _common(crash)
    booking = _only_booking(crash)
    assert booking["status"] == "CONFIRMED"
    assert {crash.snapshot.theater[s] for s in crash.seats} == {"BOOKED"}
    assert len(_events(crash, "booking_success")) == 1
    assert not _events(crash, "booking_failed")
