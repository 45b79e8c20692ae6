"""The Outbox / OutboxStore contract, run on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from booking.ports.outbox import JSON, MessageKind, OutboxMessage, OutboxStats
from tests.support.postgres import T0, Storage

LEASE = timedelta(seconds=30)

PAYLOAD: dict[str, JSON] = {
    "bookingId": 9_007_199_254_740_993,  # above 2**53: must stay an exact integer
    "totalAmount": 501.5,
    "seatNumbers": ["A-1", "A-2"],
    "confirmed": True,
    "reason": None,
    "note": "Café – ₹ 250",
    "nested": {"level": {"deeper": [1, {"x": False}]}},
}


def message(
    booking_id: int,
    *,
    name: str = "booking_success",
    kind: MessageKind = MessageKind.EVENT,
    created_at: datetime = T0,
    payload: dict[str, JSON] | None = None,
) -> OutboxMessage:
    return OutboxMessage(
        message_id=str(uuid.uuid4()),
        booking_id=booking_id,
        kind=kind,
        name=name,
        payload=payload if payload is not None else {"bookingId": booking_id},
        headers={"__TypeId__": "com.bookticket.BookingSuccessEvent"},
        created_at=created_at,
    )


async def put(storage: Storage, messages: Sequence[OutboxMessage]) -> None:
    async with storage.uow() as uow:
        await uow.outbox.put(messages)
        await uow.commit()


def ids(messages: Sequence[OutboxMessage]) -> list[str]:
    return [m.message_id for m in messages]


async def test_rows_commit_or_vanish_with_the_unit_of_work(storage: Storage) -> None:
    """Outbox rows of a rolled-back unit of work never exist; committed ones are pending."""
    async with storage.uow() as uow:
        await uow.outbox.put([message(1)])
    assert await storage.outbox.stats() == OutboxStats(0, 0, None)
    await put(storage, [message(1, created_at=T0 + timedelta(seconds=1)), message(2)])
    assert await storage.outbox.stats() == OutboxStats(2, 0, T0)


async def test_claim_hands_out_rows_in_insertion_order_intact(storage: Storage) -> None:
    """claim leases rows in insertion order; payload, headers and fields round-trip exactly."""
    first = message(1, payload=PAYLOAD)
    second = message(2, kind=MessageKind.ACTION, name="theater.book")
    third = message(3, created_at=T0 + timedelta(seconds=1))
    await put(storage, [first, second])
    await put(storage, [third])
    claimed = await storage.outbox.claim("relay-a", T0 + timedelta(seconds=2), LEASE, 10)
    assert ids(claimed) == ids([first, second, third])
    assert claimed[0] == first
    assert dict(claimed[0].payload) == PAYLOAD
    assert claimed[1].kind is MessageKind.ACTION
    assert claimed[1].name == "theater.book"
    assert claimed[2].created_at == T0 + timedelta(seconds=1)


async def test_claim_respects_the_limit_and_availability(storage: Storage) -> None:
    """claim takes at most `limit` rows, and none created after `now`."""
    rows = [message(n) for n in range(1, 6)]
    await put(storage, rows)
    await put(storage, [message(9, created_at=T0 + timedelta(minutes=1))])
    assert await storage.outbox.claim("relay-a", T0, LEASE, 0) == []
    assert ids(await storage.outbox.claim("relay-a", T0, LEASE, 3)) == ids(rows[:3])
    assert ids(await storage.outbox.claim("relay-b", T0, LEASE, 10)) == ids(rows[3:])


async def test_a_leased_row_waits_for_its_lease_to_end(storage: Storage) -> None:
    """A leased row is not claimed again before its lease ends, and is after (crash recovery)."""
    row = message(1)
    await put(storage, [row])
    assert ids(await storage.outbox.claim("relay-a", T0, LEASE, 10)) == [row.message_id]
    assert await storage.outbox.claim("relay-b", T0 + LEASE - timedelta(seconds=1), LEASE, 10) == []
    recovered = await storage.outbox.claim("relay-b", T0 + LEASE, LEASE, 10)
    assert ids(recovered) == [row.message_id]
    # The first relay lost the row: its late mark_sent does nothing.
    await storage.outbox.mark_sent(row.message_id, "relay-a", T0 + LEASE)
    assert (await storage.outbox.stats()).pending == 1
    await storage.outbox.mark_sent(row.message_id, "relay-b", T0 + LEASE)
    assert (await storage.outbox.stats()).pending == 0


async def test_rows_of_one_booking_go_out_in_order(storage: Storage) -> None:
    """A row is never handed out while an earlier unsent row of its booking is elsewhere."""
    a1, a2, b1, a3 = message(1), message(1), message(2), message(1)
    await put(storage, [a1, a2, b1, a3])
    first = await storage.outbox.claim("relay-a", T0, LEASE, 2)
    assert ids(first) == ids([a1, a2])
    # a3 waits for a1 and a2, leased by relay-a; b1 is free.
    second = await storage.outbox.claim("relay-b", T0, LEASE, 10)
    assert ids(second) == ids([b1])
    await storage.outbox.mark_sent(a1.message_id, "relay-a", T0)
    assert await storage.outbox.claim("relay-b", T0, LEASE, 10) == []
    await storage.outbox.mark_sent(a2.message_id, "relay-a", T0)
    assert ids(await storage.outbox.claim("relay-b", T0, LEASE, 10)) == ids([a3])


async def test_events_and_actions_of_a_booking_are_separate_streams(storage: Storage) -> None:
    """An action is not held back by an earlier event of its booking; each kind keeps order."""
    event1 = message(1)
    action1 = message(1, kind=MessageKind.ACTION, name="theater.release")
    event2 = message(1)
    action2 = message(1, kind=MessageKind.ACTION, name="seat_lock.release")
    await put(storage, [event1, action1, event2, action2])
    assert ids(await storage.outbox.claim("relay-a", T0, LEASE, 1)) == ids([event1])
    # event2 waits behind the leased event1; the actions go ahead, in their order.
    assert ids(await storage.outbox.claim("relay-b", T0, LEASE, 10)) == ids([action1, action2])
    for action in (action1, action2):
        await storage.outbox.mark_sent(action.message_id, "relay-b", T0)
    await storage.outbox.mark_retry(event1.message_id, "relay-a", "broker down", T0 + LEASE)
    assert await storage.outbox.claim("relay-c", T0, LEASE, 10) == []
    assert ids(await storage.outbox.claim("relay-c", T0 + LEASE, LEASE, 10)) == ids(
        [event1, event2]
    )


async def test_mark_retry_backs_off_and_keeps_the_booking_in_order(storage: Storage) -> None:
    """mark_retry counts the failure, records it and hides the row (and later ones) until due."""
    a1, a2, b1 = message(1), message(1), message(2)
    await put(storage, [a1, a2, b1])
    await storage.outbox.claim("relay-a", T0, LEASE, 10)
    retry_at = T0 + timedelta(seconds=10)
    await storage.outbox.mark_retry(a1.message_id, "relay-a", "broker down", retry_at)
    await storage.outbox.mark_retry(a2.message_id, "relay-a", "broker down", retry_at)
    await storage.outbox.mark_sent(b1.message_id, "relay-a", T0)
    # The leases are gone, but the rows are not due yet.
    assert await storage.outbox.claim("relay-b", T0 + timedelta(seconds=9), LEASE, 10) == []
    stats = await storage.outbox.stats()
    assert stats == OutboxStats(pending=2, failing=2, oldest_pending_at=T0)
    pending = await storage.outbox.recent(10, pending_only=True)
    assert [(m.attempts, m.last_error) for m in pending] == [(1, "broker down")] * 2
    again = await storage.outbox.claim("relay-b", retry_at, LEASE, 10)
    assert ids(again) == ids([a1, a2])
    assert again[0].attempts == 1


async def test_a_retry_due_later_blocks_the_rest_of_its_booking(storage: Storage) -> None:
    """When only a later row is due, it still waits for the earlier row that backs off."""
    a1, a2 = message(1), message(1)
    await put(storage, [a1, a2])
    await storage.outbox.claim("relay-a", T0, LEASE, 1)
    await storage.outbox.mark_retry(a1.message_id, "relay-a", "timeout", T0 + timedelta(minutes=1))
    assert await storage.outbox.claim("relay-a", T0 + timedelta(seconds=1), LEASE, 10) == []


async def test_only_the_lease_owner_can_settle_a_row(storage: Storage) -> None:
    """mark_sent and mark_retry from another owner change nothing."""
    row = message(1)
    await put(storage, [row])
    await storage.outbox.claim("relay-a", T0, LEASE, 10)
    await storage.outbox.mark_sent(row.message_id, "relay-b", T0)
    await storage.outbox.mark_retry(row.message_id, "relay-b", "nope", T0)
    [stored] = await storage.outbox.recent(10)
    assert stored.sent_at is None
    assert stored.attempts == 0
    assert stored.last_error is None
    await storage.outbox.mark_sent(row.message_id, "relay-a", T0 + timedelta(seconds=1))
    [sent] = await storage.outbox.recent(10)
    assert sent.sent_at == T0 + timedelta(seconds=1)
    # Sent is final for the relays: a late retry from the owner does not reopen it.
    await storage.outbox.mark_retry(row.message_id, "relay-a", "late", T0)
    assert (await storage.outbox.stats()).pending == 0
    assert await storage.outbox.claim("relay-a", T0 + timedelta(hours=1), LEASE, 10) == []


async def test_requeue_makes_a_sent_row_available_again(storage: Storage) -> None:
    """requeue reopens a sent row at once; an unknown id answers False."""
    row = message(1)
    await put(storage, [row])
    await storage.outbox.claim("relay-a", T0, LEASE, 10)
    await storage.outbox.mark_sent(row.message_id, "relay-a", T0)
    assert await storage.outbox.requeue(row.message_id, T0 + timedelta(minutes=1)) is True
    assert await storage.outbox.requeue(str(uuid.uuid4()), T0) is False
    [reopened] = await storage.outbox.recent(10, pending_only=True)
    assert reopened.sent_at is None
    claimed = await storage.outbox.claim("relay-b", T0 + timedelta(minutes=1), LEASE, 10)
    assert ids(claimed) == [row.message_id]


async def test_requeue_frees_a_failing_row_from_its_backoff(storage: Storage) -> None:
    """requeue makes a backing-off row available now."""
    row = message(1)
    await put(storage, [row])
    await storage.outbox.claim("relay-a", T0, LEASE, 10)
    await storage.outbox.mark_retry(row.message_id, "relay-a", "boom", T0 + timedelta(hours=1))
    assert await storage.outbox.requeue(row.message_id, T0 + timedelta(seconds=5))
    claimed = await storage.outbox.claim("relay-a", T0 + timedelta(seconds=5), LEASE, 10)
    assert ids(claimed) == [row.message_id]


async def test_recent_lists_newest_first(storage: Storage) -> None:
    """recent answers the newest rows first, sent or not, or only pending ones."""
    rows = [message(n) for n in range(1, 5)]
    await put(storage, rows)
    await storage.outbox.claim("relay-a", T0, LEASE, 1)
    await storage.outbox.mark_sent(rows[0].message_id, "relay-a", T0)
    assert ids(await storage.outbox.recent(2)) == ids([rows[3], rows[2]])
    assert ids(await storage.outbox.recent(10)) == ids(rows[::-1])
    assert ids(await storage.outbox.recent(10, pending_only=True)) == ids(rows[:0:-1])
    assert await storage.outbox.recent(0) == []


async def test_stats_count_pending_and_failing_rows(storage: Storage) -> None:
    """stats count unsent rows, those that failed at least once, and the oldest creation."""
    old = message(1, created_at=T0 - timedelta(minutes=5))
    rows = [old, message(2), message(3)]
    await put(storage, rows)
    await storage.outbox.claim("relay-a", T0, LEASE, 10)
    await storage.outbox.mark_sent(rows[2].message_id, "relay-a", T0)
    await storage.outbox.mark_retry(rows[1].message_id, "relay-a", "x", T0)
    assert await storage.outbox.stats() == OutboxStats(
        pending=2, failing=1, oldest_pending_at=T0 - timedelta(minutes=5)
    )


async def test_two_claimers_at_once_split_rows_by_booking(storage: Storage) -> None:
    """Two simultaneous claims never share a row, nor split one booking's rows out of order."""
    rows = [message(booking) for _ in range(3) for booking in range(1, 7)]
    await put(storage, rows)
    first, second = await asyncio.gather(
        storage.outbox.claim("relay-a", T0, LEASE, 8),
        storage.outbox.claim("relay-b", T0, LEASE, 8),
    )
    assert not set(ids(first)) & set(ids(second))
    assert first or second
    by_booking: dict[int, list[str]] = {}
    for row in rows:
        by_booking.setdefault(row.booking_id, []).append(row.message_id)
    for owned in (first, second):
        for booking, expected in by_booking.items():
            mine = [m.message_id for m in owned if m.booking_id == booking]
            # A claimer's rows of a booking are the booking's first unsent rows, in order.
            assert mine == expected[: len(mine)]
    for booking in by_booking:
        holders = [got for got in (first, second) if any(m.booking_id == booking for m in got)]
        assert len(holders) <= 1, f"booking {booking} split between the claimers"


async def test_concurrent_relays_send_each_row_once_in_order(storage: Storage) -> None:
    """Relays racing until the outbox is empty send every row once, each booking in order."""
    rows = [message(booking) for _ in range(5) for booking in range(1, 11)]
    await put(storage, rows[:25])
    await put(storage, rows[25:])
    sent: list[OutboxMessage] = []
    claimed_ids: list[str] = []

    async def relay(name: str) -> None:
        for _ in range(200):  # bounded: 50 rows need far fewer rounds
            batch = await storage.outbox.claim(name, T0, LEASE, 7)
            if not batch:
                if (await storage.outbox.stats()).pending == 0:
                    return
                await asyncio.sleep(0.005)
                continue
            claimed_ids.extend(ids(batch))
            for row in batch:
                sent.append(row)
                await storage.outbox.mark_sent(row.message_id, name, T0)
        raise AssertionError(f"{name} did not drain the outbox")

    await asyncio.gather(*(relay(f"relay-{n}") for n in range(4)))
    assert sorted(claimed_ids) == sorted(ids(rows))
    assert len(claimed_ids) == len(set(claimed_ids))
    for booking in range(1, 11):
        expected = [r.message_id for r in rows if r.booking_id == booking]
        assert [m.message_id for m in sent if m.booking_id == booking] == expected
    assert await storage.outbox.stats() == OutboxStats(0, 0, None)
