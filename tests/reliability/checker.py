"""The checker: the recorded history plus the final database, Redis, Theater, Payment and Kafka
state of one show, against the invariants of the architecture page."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from tests.reliability.load import Exchange, History
from tests.reliability.stack import TOPICS, Stack
from tests.support.kafka import FAST_GROUP

LIVE = ("PENDING", "CONFIRMED")
REFETCHED = [0]  # records fetched again after a consumer-group rebalance (information only)
TERMINAL = ("CONFIRMED", "FAILED", "CANCELLED")


@dataclass
class Snapshot:
    """Everything the checker reads about one show once the dust settled."""

    bookings: dict[int, dict[str, Any]]
    seats: dict[int, list[tuple[int, bool]]]  # booking id -> [(seat id, claimed)]
    events: dict[str, dict[str, Any]]  # outbox event rows by message id
    actions_unsent: int
    theater: dict[int, str]
    sessions: list[dict[str, Any]]
    holds: dict[int, str] | None  # seat id -> owner (None: Redis unreachable)
    records: list[dict[str, Any]]  # broker records of this show's bookings


@dataclass
class Findings:
    """The counts of the report's table; `problems` says what each non-zero count is."""

    requests: int = 0
    faults: int = 0
    double_bookings: int = 0
    events_lost: int = 0
    events_doubled: int = 0
    redelivered: int = 0  # stored again after a publish of unknown outcome (at-least-once)
    five_xx: int = 0
    retry_503: int = 0
    violations: int = 0
    leftovers: int = 0
    bookings: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def add(self, counter: str, count: int, what: str) -> None:
        if count:
            setattr(self, counter, getattr(self, counter) + count)
            self.problems.append(f"{counter}: {what}")

    @property
    def clean(self) -> bool:
        return not (
            self.double_bookings
            or self.events_lost
            or self.events_doubled
            or self.five_xx
            or self.violations
            or self.leftovers
        )


# --- reading the state ----------------------------------------------------------------------


async def bookings_of_show(stack: Stack, show_id: int) -> dict[int, dict[str, Any]]:
    conn = await stack.db()
    try:
        rows = await conn.fetch(
            "SELECT id, user_id, status, failure_reason, payment_session_id, refund_required,"
            " total_minor FROM bookings WHERE show_id = $1",
            show_id,
        )
    finally:
        await conn.close()
    return {r["id"]: dict(r) for r in rows}


async def settled(stack: Stack, show_id: int) -> tuple[bool, str]:
    """Whether every booking of the show is terminal and its outbox is empty."""
    conn = await stack.db()
    try:
        pending = await conn.fetchval(
            "SELECT count(*) FROM bookings WHERE show_id = $1 AND status = 'PENDING'", show_id
        )
        unsent = await conn.fetchval(
            "SELECT count(*) FROM outbox o JOIN bookings b ON b.id = o.booking_id"
            " WHERE b.show_id = $1 AND o.sent_at IS NULL",
            show_id,
        )
    finally:
        await conn.close()
    return pending == 0 and unsent == 0, f"{pending} PENDING, {unsent} outbox rows unsent"


async def wait_settled(stack: Stack, show_id: int, bound: float) -> str:
    """Poll (bounded) until the show settled; answers the last state seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    state = ""
    while loop.time() < deadline:
        done, state = await settled(stack, show_id)
        if done:
            return "settled"
        await asyncio.sleep(0.5)
    return state


async def snapshot(stack: Stack, show_id: int, *, redis_up: bool = True) -> Snapshot:
    assert stack.theater is not None and stack.payment is not None and stack.redis is not None
    conn = await stack.db()
    try:
        rows = await conn.fetch(
            "SELECT id, user_id, status, failure_reason, payment_session_id, refund_required,"
            " total_minor FROM bookings WHERE show_id = $1",
            show_id,
        )
        bookings = {r["id"]: dict(r) for r in rows}
        seat_rows = await conn.fetch(
            "SELECT booking_id, seat_id, claimed FROM booking_seats WHERE show_id = $1", show_id
        )
        outbox_rows = await conn.fetch(
            "SELECT o.message_id, o.kind, o.name, o.booking_id, o.sent_at, o.attempts,"
            " o.last_error, o.lease_owner, o.payload::text AS p"
            " FROM outbox o JOIN bookings b ON b.id = o.booking_id WHERE b.show_id = $1",
            show_id,
        )
    finally:
        await conn.close()
    seats: dict[int, list[tuple[int, bool]]] = defaultdict(list)
    for row in seat_rows:
        seats[row["booking_id"]].append((row["seat_id"], row["claimed"]))
    events = {
        r["message_id"]: {**dict(r), "payload": json.loads(r["p"])}
        for r in outbox_rows
        if r["kind"] == "event"
    }
    actions_unsent = sum(1 for r in outbox_rows if r["kind"] == "action" and r["sent_at"] is None)
    theater = await asyncio.to_thread(stack.theater.seat_statuses, show_id)
    ids = set(bookings)
    sessions = [
        s for s in await asyncio.to_thread(stack.payment.sessions) if s["booking_id"] in ids
    ]
    holds = await read_holds(stack.redis.url, show_id) if redis_up else None
    records = await read_events(stack, set(events), ids)
    return Snapshot(
        dict(bookings), dict(seats), events, actions_unsent, theater, sessions, holds, records
    )


async def read_holds(url: str, show_id: int) -> dict[int, str] | None:
    client = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        keys = [k async for k in client.scan_iter(match=f"booking:hold:{{show:{show_id}}}:*")]
        values = await client.mget(keys) if keys else []
    except (aioredis.RedisError, OSError):
        return None
    finally:
        await client.aclose()
    return {
        int(k.decode().rsplit(":", 1)[1]): v.decode()
        for k, v in zip(keys, values, strict=True)
        if v is not None
    }


async def read_events(
    stack: Stack, expected: set[str], booking_ids: set[int], *, wait: float = 20.0
) -> list[dict[str, Any]]:
    """Read every topic from the start as a fresh consumer group (as the Notification Service
    reads), until every expected event id came (bounded), then a little longer for extras.
    Answers each stored record of these bookings once (by topic, partition and offset): topic,
    key, headers and the decoded value. An event id at two offsets was published twice."""
    consumer = AIOKafkaConsumer(
        *TOPICS,
        bootstrap_servers=stack.proxies["broker"].address,
        group_id=f"notification-check-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=10_000,
        **FAST_GROUP,
    )
    found: list[dict[str, Any]] = []
    await consumer.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        seen: set[str] = set()
        offsets: set[tuple[str, int, int]] = set()
        settle_until: float | None = None
        while loop.time() < deadline:
            if settle_until is None and expected <= seen:
                settle_until = loop.time() + 1.5
            if settle_until is not None and loop.time() >= settle_until:
                break
            batch = await consumer.getmany(timeout_ms=200)
            for part in batch.values():
                for record in part:
                    try:
                        value = json.loads(record.value)
                    except ValueError:
                        continue
                    if value.get("bookingId") not in booking_ids:
                        continue
                    where = (record.topic, record.partition, record.offset)
                    if where in offsets:
                        # A group member may fetch a record again after a rebalance (this
                        # checker commits nothing): the same stored record, not a duplicate.
                        REFETCHED[0] += 1
                        continue
                    offsets.add(where)
                    seen.add(str(value.get("eventId")))
                    found.append(
                        {
                            "topic": record.topic,
                            "key": record.key,
                            "timestamp": record.timestamp,
                            "offset": record.offset,
                            "headers": dict(record.headers),
                            "value": value,
                        }
                    )
    finally:
        await consumer.stop()
    return found


# --- the checks -------------------------------------------------------------------------------


def check(
    snap: Snapshot,
    history: History | None,
    *,
    allow_503: bool,
    faults: int = 0,
    expect_settled: bool = True,
) -> Findings:
    f = Findings(faults=faults)
    f.bookings = Counter(b["status"] for b in snap.bookings.values())
    if history is not None:
        _check_answers(f, history.exchanges, allow_503)
        _check_told(f, snap, history)
    _check_double_bookings(f, snap)
    _check_payments(f, snap)
    _check_events(f, snap)
    if expect_settled:
        _check_leftovers(f, snap)
    return f


def _check_answers(f: Findings, exchanges: Iterable[Exchange], allow_503: bool) -> None:
    exchanges = list(exchanges)
    f.requests = len(exchanges)
    bad = []
    for e in exchanges:
        if e.status is None or e.status < 500:
            continue
        if e.status == 503 and e.retry_after and e.retry_after.isdigit() and allow_503:
            f.retry_503 += 1
        else:
            bad.append(e)
    shown = ", ".join(f"{e.method} {e.path} {e.status} {e.code}" for e in bad[:5])
    f.add("five_xx", len(bad), f"{len(bad)} answers 5xx not allowed here: {shown}")


def _check_told(f: Findings, snap: Snapshot, history: History) -> None:
    """A customer told CONFIRMED must find the booking CONFIRMED: a confirmation is final."""
    broken = [
        b for b, told in history.told.items()
        if told == "CONFIRMED" and snap.bookings.get(b, {}).get("status") != "CONFIRMED"
    ]  # fmt: skip
    f.add("violations", len(broken), f"told CONFIRMED but not CONFIRMED: {broken[:5]}")
    created = {
        int(e.body["bookingId"])
        for e in history.exchanges
        if e.status == 201 and isinstance(e.body, dict)
    }
    missing = sorted(created - set(snap.bookings))
    f.add("violations", len(missing), f"answered 201 but not in the database: {missing[:5]}")


def _check_double_bookings(f: Findings, snap: Snapshot) -> None:
    holders: dict[int, list[int]] = defaultdict(list)
    claims: Counter[int] = Counter()
    for booking_id, seats in snap.seats.items():
        status = snap.bookings[booking_id]["status"]
        for seat_id, claimed in seats:
            if status in LIVE:
                holders[seat_id].append(booking_id)
            if claimed:
                claims[seat_id] += 1
    doubled = {s: b for s, b in holders.items() if len(b) > 1}
    f.add(
        "double_bookings",
        len(doubled),
        f"show-seats in two live bookings: {dict(list(doubled.items())[:5])}",
    )
    over = [s for s, n in claims.items() if n > 1]
    f.add("double_bookings", len(over), f"show-seats claimed twice: {over[:5]}")
    # The Theater's view: a seat sold there belongs to exactly one CONFIRMED booking, and a
    # CONFIRMED booking's seats are sold there.
    confirmed_seats = {
        seat_id
        for b, seats in snap.seats.items()
        if snap.bookings[b]["status"] == "CONFIRMED"
        for seat_id, _ in seats
    }
    unsold = sorted(s for s in confirmed_seats if snap.theater.get(s) != "BOOKED")
    f.add("violations", len(unsold), f"CONFIRMED seats not BOOKED at the Theater: {unsold[:5]}")
    orphan = sorted(
        s for s, st in snap.theater.items() if st == "BOOKED" and s not in confirmed_seats
    )
    f.add("violations", len(orphan), f"seats BOOKED at the Theater without a booking: {orphan}")


def _check_payments(f: Findings, snap: Snapshot) -> None:
    by_session = {s["session_id"]: s for s in snap.sessions}
    unpaid = []
    for b in snap.bookings.values():
        if b["status"] != "CONFIRMED":
            continue
        session = by_session.get(b["payment_session_id"] or "")
        if (
            session is None
            or session["paymentStatus"] != "COMPLETED"
            or session["booking_id"] != b["id"]
        ):
            unpaid.append(b["id"])
    f.add("violations", len(unpaid), f"CONFIRMED without its completed payment: {unpaid[:5]}")
    lost = []
    for s in snap.sessions:
        b = snap.bookings.get(s["booking_id"])
        if s["paymentStatus"] != "COMPLETED" or b is None:
            continue
        if b["payment_session_id"] == s["session_id"] and not (
            b["status"] == "CONFIRMED" or b["refund_required"]
        ):
            lost.append(b["id"])
    f.add("violations", len(lost), f"paid but neither CONFIRMED nor flagged for refund: {lost}")


def _check_events(f: Findings, snap: Snapshot) -> None:
    delivered = Counter(str(r["value"].get("eventId")) for r in snap.records)
    unsent = [m for m, e in snap.events.items() if e["sent_at"] is None]
    f.add("events_lost", len(unsent), f"events never relayed: {unsent[:5]}")
    lost = [m for m, e in snap.events.items() if e["sent_at"] is not None and m not in delivered]
    f.add("events_lost", len(lost), f"relayed events missing on the broker: {lost[:5]}")
    # An event stored twice is a double, unless the relay had to publish it again after a
    # failed attempt whose outcome it could not know (a timeout while the broker was cut off):
    # at-least-once allows that redelivery, and the row records it.
    twice = {m: n for m, n in delivered.items() if n > 1}
    retried = {m for m in twice if (snap.events.get(m, {}).get("attempts") or 0) > 0}
    f.redelivered = sum(twice[m] - 1 for m in retried)
    doubled = {m: n for m, n in twice.items() if m not in retried}
    details = [
        (
            m,
            [(r["offset"], r["timestamp"]) for r in snap.records if r["value"]["eventId"] == m],
            {k: snap.events.get(m, {}).get(k) for k in ("attempts", "last_error", "lease_owner")},
        )
        for m in list(doubled)[:3]
    ]
    f.add(
        "events_doubled",
        sum(n - 1 for n in doubled.values()),
        f"events stored twice without a failed publish before: {details}",
    )
    unknown = [m for m in delivered if m not in snap.events]
    f.add("violations", len(unknown), f"events on the broker with no outbox row: {unknown[:5]}")
    # Each state change is announced once: per booking, one success at most, and it matches a
    # CONFIRMED booking; a failure announcement matches a booking that failed (or was then
    # confirmed by a late payment).
    per_booking: dict[tuple[int, str], set[str]] = defaultdict(set)
    for r in snap.records:
        per_booking[(int(r["value"]["bookingId"]), r["topic"])].add(str(r["value"]["eventId"]))
    for (booking_id, topic), ids in per_booking.items():
        status = snap.bookings[booking_id]["status"]
        if len(ids) > 1:
            f.add("events_doubled", len(ids) - 1, f"booking {booking_id}: {len(ids)} {topic}")
        if topic == "booking_success" and status != "CONFIRMED":
            f.add("violations", 1, f"booking_success for {booking_id}, which is {status}")
        if topic == "booking_failed" and status == "PENDING":
            f.add("violations", 1, f"booking_failed for {booking_id}, which is PENDING")
    for booking_id, b in snap.bookings.items():
        if b["status"] == "CONFIRMED" and not per_booking.get((booking_id, "booking_success")):
            f.add("events_lost", 1, f"CONFIRMED booking {booking_id} never announced")
        if b["status"] in ("FAILED", "CANCELLED") and not per_booking.get(
            (booking_id, "booking_failed")
        ):
            f.add("events_lost", 1, f"{b['status']} booking {booking_id} never announced")


def _check_leftovers(f: Findings, snap: Snapshot) -> None:
    stuck = [b for b, row in snap.bookings.items() if row["status"] not in TERMINAL]
    f.add("leftovers", len(stuck), f"bookings still PENDING after hold + grace: {stuck[:5]}")
    f.add("leftovers", snap.actions_unsent, f"{snap.actions_unsent} after-commit actions unsent")
    dead = {b for b, row in snap.bookings.items() if row["status"] not in LIVE}
    claims = [b for b in dead for _, claimed in snap.seats.get(b, []) if claimed]
    f.add("leftovers", len(claims), f"claims kept by dead bookings: {sorted(set(claims))[:5]}")
    if snap.holds is not None:
        owners = {f"booking:{b}" for b in dead}
        holds = sorted(s for s, owner in snap.holds.items() if owner in owners)
        f.add("leftovers", len(holds), f"Redis holds of dead bookings on seats {holds[:5]}")
    locked = sorted(s for s, st in snap.theater.items() if st == "LOCKED")
    f.add("leftovers", len(locked), f"seats still LOCKED at the Theater: {locked[:5]}")
