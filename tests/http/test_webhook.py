"""The signed payment webhook: applied once; forged, stale, replayed or malformed change nothing."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from booking.entrypoints.webhook import sign

from .conftest import WEBHOOK_SECRET, Api, ApiFactory, problem, settings_for

URL = "/api/v1/payments/webhook"


def _body(booking: dict[str, object], status: str = "COMPLETED", **changes: object) -> bytes:
    payload = {
        "sessionId": booking["paymentSessionId"],
        "bookingId": booking["bookingId"],
        "amount": booking["totalAmount"],
        "status": status,
    } | changes
    return json.dumps(payload).encode()


async def test_signed_result_confirms_the_booking(api: Api) -> None:
    """A fresh, correctly signed COMPLETED result confirms its booking (200 applied)."""
    created = await api.booked([1, 2])
    body = _body(created)
    response = await api.client.post(URL, content=body, headers=api.webhook_headers(body))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "result": "applied",
        "bookingId": created["bookingId"],
        "bookingStatus": "CONFIRMED",
    }
    assert api.world.booking(created["bookingId"]).status.value == "CONFIRMED"


async def test_failed_result_fails_the_booking(api: Api) -> None:
    """A signed FAILED result fails a PENDING booking with PAYMENT_FAILED."""
    created = await api.booked([3])
    body = _body(created, "FAILED")
    response = await api.client.post(URL, content=body, headers=api.webhook_headers(body))
    assert response.json()["bookingStatus"] == "FAILED"
    assert api.world.booking(created["bookingId"]).failure_reason.value == "PAYMENT_FAILED"  # type: ignore[union-attr]


async def test_replay_is_refused(api: Api) -> None:
    """The same signed call twice: the second is 409 and changes nothing."""
    created = await api.booked([4])
    body = _body(created)
    headers = api.webhook_headers(body)
    assert (await api.client.post(URL, content=body, headers=headers)).status_code == 200
    version = api.world.booking(created["bookingId"]).version
    problem(await api.client.post(URL, content=body, headers=headers), 409, "WEBHOOK_REPLAYED")
    assert api.world.booking(created["bookingId"]).version == version


@pytest.mark.parametrize("shift", [timedelta(minutes=-6), timedelta(minutes=6)])
async def test_stale_or_future_timestamp_is_refused(api: Api, shift: timedelta) -> None:
    """A signature older or newer than the tolerance window is 400 and changes nothing."""
    created = await api.booked([5])
    body = _body(created)
    headers = api.webhook_headers(body, at=api.world.clock.now() + shift)
    response = await api.client.post(URL, content=body, headers=headers)
    problem(response, 400, "WEBHOOK_TIMESTAMP_OUT_OF_TOLERANCE")
    assert api.world.booking(created["bookingId"]).status.value == "PENDING"


async def test_forged_signature_and_tampered_body_are_refused(api: Api) -> None:
    """A wrong key, or a body changed after signing: 401, nothing changes."""
    created = await api.booked([6])
    body = _body(created)
    t = int(api.world.clock.now().timestamp())
    forged = {"Booking-Signature": f"t={t},v1={sign(b'other', t, body)}"}
    problem(
        await api.client.post(URL, content=body, headers=forged), 401, "WEBHOOK_SIGNATURE_INVALID"
    )
    tampered = _body(created, amount=1.0)
    problem(
        await api.client.post(URL, content=tampered, headers=api.webhook_headers(body)),
        401,
        "WEBHOOK_SIGNATURE_INVALID",
    )
    assert api.world.booking(created["bookingId"]).status.value == "PENDING"


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "WEBHOOK_SIGNATURE_MISSING"),
        ("garbage", "WEBHOOK_SIGNATURE_MALFORMED"),
        ("t=abc,v1=00", "WEBHOOK_SIGNATURE_MALFORMED"),
        ("t=1", "WEBHOOK_SIGNATURE_MALFORMED"),
    ],
)
async def test_malformed_signature_headers_are_400(api: Api, header: str | None, code: str) -> None:
    """Missing or unreadable signature headers are 400."""
    headers = {"Booking-Signature": header} if header is not None else {}
    response = await api.client.post(URL, content=b"{}", headers=headers)
    problem(response, 400, code)


async def test_mismatched_amount_changes_nothing(api: Api) -> None:
    """A signed result whose amount differs from the booking is refused (422) and logged."""
    created = await api.booked([7])
    body = _body(created, amount=1.0)
    response = await api.client.post(URL, content=body, headers=api.webhook_headers(body))
    problem(response, 422, "PAYMENT_MISMATCH")
    assert api.world.booking(created["bookingId"]).status.value == "PENDING"


async def test_unknown_session_is_acknowledged_without_effect(api: Api) -> None:
    """A result for a session we never created: 202 ignored."""
    body = json.dumps({"sessionId": "cs_nobody", "status": "COMPLETED", "amount": 5.0}).encode()
    response = await api.client.post(URL, content=body, headers=api.webhook_headers(body))
    assert response.status_code == 202
    assert response.json()["result"] == "ignored"


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"status": "COMPLETED"}', b'{"sessionId": "x", "status": "WHATEVER"}'],
)
async def test_signed_but_malformed_body_is_4xx(api: Api, body: bytes) -> None:
    """A correctly signed body that is not a payment result is a 4xx, never applied."""
    response = await api.client.post(URL, content=body, headers=api.webhook_headers(body))
    assert response.status_code in (400, 422)
    problem(response, response.status_code, response.json()["errorCode"])


async def test_webhook_off_without_a_secret(make_api: ApiFactory) -> None:
    """With no BOOKING_WEBHOOK_SECRET the endpoint does not exist (404)."""
    api = await make_api(settings_for(webhook_secret=None))
    body = b"{}"
    response = await api.client.post(URL, content=body, headers=api.webhook_headers(body))
    problem(response, 404, "NOT_FOUND")
    assert WEBHOOK_SECRET
