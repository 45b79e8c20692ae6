"""The checker itself: each kind of broken final state is counted where the report shows it
(a checker that finds nothing would make every scenario pass)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.reliability.checker import Snapshot, check

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _booking(booking_id: int, status: str, session: str | None = None) -> dict[str, Any]:
    return {
        "id": booking_id,
        "user_id": 1,
        "status": status,
        "failure_reason": None,
        "payment_session_id": session,
        "refund_required": False,
        "total_minor": 100,
    }


def _event(event_id: str, booking_id: int, *, sent: bool = True) -> dict[str, Any]:
    return {
        "message_id": event_id,
        "kind": "event",
        "name": "booking_success",
        "booking_id": booking_id,
        "sent_at": NOW if sent else None,
        "attempts": 0,
        "last_error": None,
        "lease_owner": None,
        "payload": {},
    }


def _record(event_id: str, booking_id: int, offset: int, topic: str = "booking_success") -> Any:
    value = {"eventId": event_id, "bookingId": booking_id}
    return {"topic": topic, "key": b"", "timestamp": 0, "offset": offset, "value": value}


def _clean() -> Snapshot:
    return Snapshot(
        bookings={1: _booking(1, "CONFIRMED", "cs_1"), 2: _booking(2, "FAILED", "cs_2")},
        seats={1: [(101, True)], 2: [(102, False)]},
        events={"e1": _event("e1", 1), "e2": _event("e2", 2)},
        actions_unsent=0,
        theater={101: "BOOKED", 102: "AVAILABLE"},
        sessions=[
            {"session_id": "cs_1", "booking_id": 1, "paymentStatus": "COMPLETED"},
            {"session_id": "cs_2", "booking_id": 2, "paymentStatus": "PENDING"},
        ],
        holds={},
        records=[_record("e1", 1, 0), _record("e2", 2, 0, "booking_failed")],
    )


def test_a_clean_state_is_clean() -> None:
    """A consistent final state has every count at zero."""
    findings = check(_clean(), None, allow_503=False)
    assert findings.clean, findings.problems


def test_every_kind_of_breakage_is_counted() -> None:
    """Double booking, lost and doubled events, an unpaid confirmation, a lost payment and
    leftovers each land in their column."""
    snap = _clean()
    snap.bookings[3] = _booking(3, "CONFIRMED", "cs_3")  # same seat as booking 1, not paid
    snap.seats[3] = [(101, False)]
    snap.sessions.append({"session_id": "cs_3", "booking_id": 3, "paymentStatus": "PENDING"})
    snap.sessions[1]["paymentStatus"] = "COMPLETED"  # booking 2 paid, FAILED, no refund flag
    snap.events["e3"] = _event("e3", 3)  # relayed, never on the broker
    snap.records.append(_record("e1", 1, 1))  # stored twice
    snap.seats[2] = [(102, True)]  # a dead booking keeps its claim
    snap.theater[103] = "LOCKED"
    findings = check(snap, None, allow_503=False)
    assert findings.double_bookings == 1
    assert findings.events_lost >= 1
    assert findings.events_doubled == 1
    assert findings.violations >= 2
    assert findings.leftovers == 2
    assert not findings.clean
