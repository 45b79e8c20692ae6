"""The admin API: outbox backlog and replay, refunds due, audit trails; ADMIN role only."""

from __future__ import annotations

from datetime import timedelta

import pytest

from booking.domain.booking import PaymentStatus
from tests.http.conftest import BASE, HOLD, Api, auth, problem

ADMIN = "/api/v1/admin"


def admin() -> dict[str, str]:
    return auth(1, ("ROLE_ADMIN",))


async def paid(api: Api, seat_ids: list[int], user_id: int = 7) -> dict[str, object]:
    created = await api.booked(seat_ids, user_id)
    api.settle(str(created["paymentSessionId"]), PaymentStatus.COMPLETED)
    response = await api.client.get(
        f"{BASE}/{created['bookingId']}/verify-payment", headers=auth(user_id)
    )
    assert response.json()["status"] == "CONFIRMED", response.text
    return created


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"{ADMIN}/outbox"),
        ("POST", f"{ADMIN}/outbox/some-id/replay"),
        ("GET", f"{ADMIN}/refunds"),
        ("GET", f"{ADMIN}/bookings/1/audit"),
    ],
)
async def test_admin_calls_need_the_admin_role(api: Api, method: str, path: str) -> None:
    """Without identity 401; a user or a service account without ADMIN gets 403."""
    problem(await api.client.request(method, path), 401, "UNAUTHENTICATED")
    problem(await api.client.request(method, path, headers=auth()), 403, "FORBIDDEN")
    service = auth(9, ("ROLE_SERVICE_ACCOUNT",))
    problem(await api.client.request(method, path, headers=service), 403, "FORBIDDEN")


async def test_both_role_spellings_are_admin(api: Api) -> None:
    """`ROLE_ADMIN` and `ADMIN` both open the admin API."""
    for role in ("ROLE_ADMIN", "ADMIN"):
        response = await api.client.get(f"{ADMIN}/outbox", headers=auth(1, (role,)))
        assert response.status_code == 200, response.text


async def test_outbox_shows_backlog_and_failed_rows_then_replay_sends_them(api: Api) -> None:
    """Broker down: the event waits, counted and listed with its error; after a replay it is
    published with its own eventId, and the backlog is empty."""
    created = await paid(api, [60])
    api.world.publisher.down = True
    await api.relay()
    report = (await api.client.get(f"{ADMIN}/outbox", headers=admin())).json()
    assert report["pending"] >= 1
    assert report["failing"] >= 1
    assert report["oldestPendingAt"] is not None
    failed = [r for r in report["failed"] if r["bookingId"] == created["bookingId"]]
    assert [r["name"] for r in failed] == ["booking_success"]
    row = failed[0]
    assert row["kind"] == "event"
    assert row["attempts"] == 1
    assert "PublishFailed" in row["lastError"]
    assert row["sentAt"] is None
    assert row["payload"]["bookingId"] == created["bookingId"]

    api.world.publisher.down = False
    replay = await api.client.post(f"{ADMIN}/outbox/{row['messageId']}/replay", headers=admin())
    assert replay.status_code == 200, replay.text
    assert replay.json() == {"messageId": row["messageId"], "requeued": True}
    await api.relay()  # due now, although its back-off had not run out
    sent = [m for m in api.world.publisher.published if m.booking_id == created["bookingId"]]
    assert [m.message_id for m in sent] == [row["messageId"]]
    after = (await api.client.get(f"{ADMIN}/outbox", headers=admin())).json()
    assert after["pending"] == 0
    assert after["failed"] == []
    assert after["oldestPendingAgeSeconds"] == 0.0


async def test_replaying_a_sent_event_publishes_it_again_with_the_same_id(api: Api) -> None:
    """A replay of a dispatched row re-publishes it (at least once, same eventId)."""
    created = await paid(api, [61])
    await api.relay()
    first = [m for m in api.world.publisher.published if m.booking_id == created["bookingId"]]
    assert len(first) == 1
    response = await api.client.post(
        f"{ADMIN}/outbox/{first[0].message_id}/replay", headers=admin()
    )
    assert response.status_code == 200
    await api.relay()
    again = [m for m in api.world.publisher.published if m.booking_id == created["bookingId"]]
    assert [m.message_id for m in again] == [first[0].message_id] * 2


async def test_replay_of_an_unknown_row_is_404(api: Api) -> None:
    """No such outbox row: 404 with its own error code."""
    response = await api.client.post(f"{ADMIN}/outbox/no-such-row/replay", headers=admin())
    problem(response, 404, "OUTBOX_MESSAGE_NOT_FOUND")


async def test_refunds_list_late_payments_for_resold_seats(api: Api) -> None:
    """Paid after its hold expired and its seat was resold: the booking is listed for refund."""
    late = await api.booked([62], user_id=7)
    api.world.clock.advance(HOLD + timedelta(minutes=5))
    await api.reconcile()
    await api.relay()
    await api.booked([62], user_id=8)
    api.settle(late["paymentSessionId"], PaymentStatus.COMPLETED)
    await api.client.get(f"{BASE}/{late['bookingId']}/verify-payment", headers=auth(7))

    refunds = (await api.client.get(f"{ADMIN}/refunds", headers=admin())).json()
    assert [b["bookingId"] for b in refunds] == [late["bookingId"]]
    assert refunds[0]["refundRequired"] is True
    assert refunds[0]["status"] == "FAILED"
    limited = await api.client.get(f"{ADMIN}/refunds", params={"limit": 0}, headers=admin())
    problem(limited, 400, "INVALID_PARAMETER")


async def test_audit_trail_of_any_booking(api: Api) -> None:
    """The trail lists every status change with its actor, oldest first, for any owner."""
    created = await paid(api, [63], user_id=11)
    response = await api.client.get(
        f"{ADMIN}/bookings/{created['bookingId']}/audit", headers=admin()
    )
    assert response.status_code == 200, response.text
    trail = response.json()
    changes = [(e["fromStatus"], e["toStatus"]) for e in trail]
    assert changes[0] == (None, "PENDING")
    assert changes[-1] == ("PENDING", "CONFIRMED")
    assert trail[0]["actor"] == "user:11"
    assert all(e["bookingId"] == created["bookingId"] for e in trail)
    assert {"at", "reason", "refundRequired"} <= set(trail[0])


async def test_audit_of_an_unknown_or_malformed_booking(api: Api) -> None:
    """Unknown booking id: 404; a path id that is not an id: 400."""
    problem(
        await api.client.get(f"{ADMIN}/bookings/999999/audit", headers=admin()),
        404,
        "BOOKING_NOT_FOUND",
    )
    problem(
        await api.client.get(f"{ADMIN}/bookings/abc/audit", headers=admin()),
        400,
        "INVALID_BOOKING_ID",
    )


async def test_openapi_documents_the_admin_endpoints(api: Api) -> None:
    """The admin endpoints appear in the OpenAPI document with examples, under `admin`."""
    paths = (await api.client.get("/schema/openapi.json")).json()["paths"]
    for path, method in [
        ("/api/v1/admin/outbox", "get"),
        ("/api/v1/admin/outbox/{message_id}/replay", "post"),
        ("/api/v1/admin/refunds", "get"),
        ("/api/v1/admin/bookings/{booking_id}/audit", "get"),
    ]:
        operation = paths[path][method]
        assert operation["tags"] == ["admin"]
        assert "examples" in str(operation["responses"]["200"]), path
        assert "403" in operation["responses"]
