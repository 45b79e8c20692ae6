"""Hostile callers against a production-wired replica (gateway+jwt, limits on, DEBUG logs):
every refusal changes nothing in the database, Redis or the Theater, and the logs of the whole
run carry no token, secret or card number. (tests/http covers each refusal's answer on memory
adapters; this module proves, over the wire, that nothing moved.)"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from booking.entrypoints.identity import mint_token
from booking.entrypoints.webhook import signature_header
from tests.e2e.conftest import SECRET, WEBHOOK_SECRET
from tests.reliability.checker import read_holds
from tests.reliability.stack import BASE, WEBHOOK, Replica, Stack, gateway_headers

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.kafka]

BURST = 3
MAX_BODY = 4096
OTHER_SECRET = base64.b64encode(b"not-the-platform-key-" * 4).decode()
CARDS = ("4111111111111111", "5555555555554444", "378282246310005")


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _alg_none(user_id: int) -> str:
    claims = {"sub": str(user_id), "roles": [{"authority": "ROLE_ADMIN"}], "exp": 4_102_444_800}
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


def hostile_credentials(victim: int, attacker: int) -> dict[str, dict[str, str]]:
    """Every way of claiming an identity one does not have; all must answer 401."""
    own = gateway_headers(attacker)
    expired = mint_token(SECRET, victim, ttl=timedelta(hours=-1))
    return {
        "expired": {"Authorization": f"Bearer {expired}"},
        "wrongly signed": {"Authorization": f"Bearer {mint_token(OTHER_SECRET, victim)}"},
        "alg none": {"Authorization": f"Bearer {_alg_none(victim)}"},
        "garbage": {"Authorization": "Bearer " + "x" * 40 + "." + CARDS[2]},
        "not bearer": {"Authorization": f"Basic {base64.b64encode(b'a:b').decode()}"},
        "forged roles": own | {"X-User-Roles": "ROLE_USER,ROLE_ADMIN"},
        "forged user id": own | {"X-User-Id": str(victim)},
        "headers only": {"X-User-Id": str(victim), "X-User-Roles": "ROLE_ADMIN"},
    }  # fmt: skip


@pytest.fixture(scope="module")
async def hostile(stack: Stack) -> AsyncIterator[Replica]:
    """A replica with the creation limit on and everything logged at DEBUG."""
    replica = stack.replica(
        "hostile",
        BOOKING_CREATE_LIMIT_PER_MINUTE="60",
        BOOKING_CREATE_LIMIT_BURST=str(BURST),
        BOOKING_MAX_BODY_BYTES=str(MAX_BODY),
        BOOKING_LOG_LEVEL="DEBUG",
    )
    await asyncio.to_thread(replica.start)
    try:
        yield replica
    finally:
        await asyncio.to_thread(replica.stop)


@pytest.fixture
async def http(hostile: Replica) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hostile.url, timeout=20) as client:
        yield client


async def _rows(stack: Stack, sql: str, *args: Any) -> list[dict[str, Any]]:
    conn = await stack.db()
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


async def _nothing_held(stack: Stack, show_id: int) -> None:
    """No booking, no hold, no Theater lock on this show."""
    assert stack.theater is not None and stack.redis is not None
    assert await _rows(stack, "SELECT id FROM bookings WHERE show_id = $1", show_id) == []
    assert await read_holds(stack.redis.url, show_id) == {}
    statuses = await asyncio.to_thread(stack.theater.seat_statuses, show_id)
    assert set(statuses.values()) == {"AVAILABLE"}


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


async def test_creation_limit_is_429_with_retry_after(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    """Past its burst a caller gets 429 + Retry-After and nothing is held; other callers are
    unaffected; after the wait the same Idempotency-Key goes through (a 429 is never kept as
    the key's answer)."""
    show_id, seats = stack.new_show(2, 10)
    user = 7001
    for seat in seats[:BURST]:
        created = await http.post(
            BASE, json={"showId": show_id, "seatIds": [seat]}, headers=gateway_headers(user)
        )
        assert created.status_code == 201, created.text
    key = {"Idempotency-Key": "limited-once"}
    body = {"showId": show_id, "seatIds": [seats[BURST]]}
    limited = await http.post(BASE, json=body, headers=gateway_headers(user) | key)
    problem = _problem(limited, 429)
    assert problem["errorCode"] == "TOO_MANY_REQUESTS"
    wait = int(limited.headers["retry-after"])
    assert wait >= 1
    owned = await _rows(stack, "SELECT id FROM bookings WHERE user_id = $1", user)
    assert len(owned) == BURST
    assert stack.redis is not None
    holds = await read_holds(stack.redis.url, show_id)
    assert holds is not None and seats[BURST] not in holds

    other = await http.post(
        BASE, json={"showId": show_id, "seatIds": [seats[-1]]}, headers=gateway_headers(7002)
    )
    assert other.status_code == 201, other.text

    await asyncio.sleep(wait)
    again = await http.post(BASE, json=body, headers=gateway_headers(user) | key)
    assert again.status_code == 201, again.text


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("eleven seats", 422, "VALIDATION_FAILED"),
        ("the same seat twice", 422, "VALIDATION_FAILED"),
        ("a body over the limit", 413, "PAYLOAD_TOO_LARGE"),
        ("a card number in an unknown field", 422, "VALIDATION_FAILED"),
    ],
)
async def test_abuse_is_refused_and_holds_nothing(
    stack: Stack, http: httpx.AsyncClient, name: str, status: int, code: str
) -> None:
    """Over the seat cap, duplicated seats, an oversized body, an unknown field: refused with
    its problem document, and no booking, hold or Theater lock is left anywhere."""
    show_id, seats = stack.new_show(2, 10)
    body: dict[str, Any] = {"showId": show_id, "seatIds": seats[:11]}
    if name == "the same seat twice":
        body["seatIds"] = [seats[0], seats[0]]
    elif name == "a body over the limit":
        body = {"showId": show_id, "seatIds": seats[:2], "note": "x" * MAX_BODY}
    elif name == "a card number in an unknown field":
        body = {"showId": show_id, "seatIds": seats[:2], "cardNumber": CARDS[0]}
    # A caller per case: the creation limit counts refused attempts too.
    user = 7100 + sum(map(ord, name))
    response = await http.post(BASE, json=body, headers=gateway_headers(user))
    assert _problem(response, status)["errorCode"] == code
    assert CARDS[0] not in response.text
    await _nothing_held(stack, show_id)


async def test_hostile_identities_change_nothing(stack: Stack, http: httpx.AsyncClient) -> None:
    """Expired, wrongly signed, alg none, garbage or non-bearer tokens, forged roles or user id,
    headers without a token: 401 on every route; a valid stranger gets 404; the victim's
    booking, its audit trail and the Theater are exactly as before."""
    assert stack.theater is not None
    victim, attacker = 7200, 7201
    show_id, seats = stack.new_show(1, 6)
    created = await http.post(
        BASE, json={"showId": show_id, "seatIds": seats[:2]}, headers=gateway_headers(victim)
    )
    assert created.status_code == 201, created.text
    booking_id = created.json()["bookingId"]
    before = await _rows(stack, "SELECT status, version FROM bookings WHERE id = $1", booking_id)
    theater_before = await asyncio.to_thread(stack.theater.seat_statuses, show_id)
    routes = [
        ("GET", f"{BASE}/{booking_id}", None),
        ("GET", f"{BASE}/{booking_id}/seats", None),
        ("GET", f"{BASE}/{booking_id}/verify-payment", None),
        ("POST", f"{BASE}/{booking_id}/cancel", None),
        ("GET", BASE, None),
        ("POST", BASE, {"showId": show_id, "seatIds": seats[2:4]}),
    ]
    for name, headers in hostile_credentials(victim, attacker).items():
        for method, path, body in routes:
            response = await http.request(method, path, json=body, headers=headers)
            assert response.status_code == 401, (name, method, path, response.text)
            assert response.json()["errorCode"] != "INTERNAL_ERROR"
    stranger = gateway_headers(attacker)
    for method, path, _ in routes[:4]:
        response = await http.request(method, path, headers=stranger)
        assert response.status_code == 404, (method, path, response.text)

    after = await _rows(stack, "SELECT status, version FROM bookings WHERE id = $1", booking_id)
    assert after == before == [{"status": "PENDING", "version": before[0]["version"]}]
    trail = await _rows(stack, "SELECT actor FROM audit_log WHERE booking_id = $1", booking_id)
    assert len(trail) == 2  # opened, then the checkout attached: nobody else wrote
    assert await _rows(stack, "SELECT id FROM bookings WHERE show_id = $1", show_id) == [
        {"id": booking_id}
    ]
    assert await asyncio.to_thread(stack.theater.seat_statuses, show_id) == theater_before


async def test_webhook_forgeries_change_nothing(stack: Stack, http: httpx.AsyncClient) -> None:
    """A webhook signed with another key, or with a stale or future timestamp, is refused and
    the booking stays PENDING; the genuine one confirms; its replay is refused and changes
    nothing more."""
    show_id, seats = stack.new_show(1, 4)
    created = await http.post(
        BASE, json={"showId": show_id, "seatIds": seats[:1]}, headers=gateway_headers(7300)
    )
    assert created.status_code == 201, created.text
    booking = created.json()
    body = json.dumps(
        {
            "sessionId": booking["paymentSessionId"],
            "bookingId": booking["bookingId"],
            "amount": booking["totalAmount"],
            "status": "COMPLETED",
            "card": CARDS[1],
        }
    ).encode()
    now = datetime.now(UTC)
    forgeries = {
        "another key": (signature_header(b"whsec_forged", body, now), 401),
        "stale": (signature_header(WEBHOOK_SECRET.encode(), body, now - timedelta(hours=1)), 400),
        "future": (signature_header(WEBHOOK_SECRET.encode(), body, now + timedelta(hours=1)), 400),
        "no signature": ("", 400),
    }

    async def state() -> list[dict[str, Any]]:
        return await _rows(
            stack, "SELECT status, version FROM bookings WHERE id = $1", booking["bookingId"]
        )

    before = await state()
    for name, (header, status) in forgeries.items():
        response = await http.post(
            WEBHOOK,
            content=body,
            headers={"Booking-Signature": header, "Content-Type": "application/json"},
        )
        assert response.status_code == status, (name, response.text)
        assert await state() == before, name
    genuine = {
        "Booking-Signature": signature_header(WEBHOOK_SECRET.encode(), body),
        "Content-Type": "application/json",
    }
    applied = await http.post(WEBHOOK, content=body, headers=genuine)
    assert applied.status_code == 200, applied.text
    confirmed = await state()
    assert confirmed[0]["status"] == "CONFIRMED"
    replay = await http.post(WEBHOOK, content=body, headers=genuine)
    assert replay.status_code == 409, replay.text
    assert await state() == confirmed


_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
# A card number stands alone: a run of digits inside a hex request or trace id is not one (about
# one 32-hex id in twenty holds a run of 13 digits, and one run in ten passes the Luhn check).
_DIGITS = re.compile(r"(?<![0-9A-Za-z])(?:[0-9][ -]?){12,18}[0-9](?![0-9A-Za-z])")


def _luhn(number: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


async def test_logs_hold_no_token_secret_or_card(
    stack: Stack, hostile: Replica, http: httpx.AsyncClient
) -> None:
    """After this module's traffic (tokens good and bad, secrets, card numbers planted in
    bodies, headers, query strings and idempotency keys), the DEBUG log of the replica holds
    no JWT, no Authorization value, neither secret, and no card-like number."""
    show_id, seats = stack.new_show(1, 4)
    planted = gateway_headers(7400) | {"X-Card": CARDS[0], "Idempotency-Key": CARDS[1]}
    await http.post(BASE, json={"showId": show_id, "seatIds": seats[:1]}, headers=planted)
    await http.get(BASE, params={"cursor": CARDS[2], "card": CARDS[0]}, headers=planted)
    await http.get(f"{BASE}/1/verify-payment", params={"sessionId": CARDS[0]}, headers=planted)
    await http.post(BASE, content=b'{"cardNumber": "' + CARDS[1].encode() + b'"', headers=planted)
    log = hostile.all_logs()
    assert log.count("\n") > 50, "the replica logged nearly nothing: is DEBUG on?"
    findings = {
        "a JWT": _JWT.findall(log)[:3],
        "an Authorization value": [w for w in ("Bearer ", "Basic ") if w in log],
        "the JWT secret": [SECRET] if SECRET in log else [],
        "the webhook secret": [WEBHOOK_SECRET] if WEBHOOK_SECRET in log else [],
        "a planted card number": [c for c in CARDS if c in log],
    }
    ids = {str(r["id"]) for r in await _rows(stack, "SELECT id FROM bookings")}
    card_like = [
        m
        for m in (re.sub(r"[ -]", "", found) for found in _DIGITS.findall(log))
        if _luhn(m) and m not in ids
    ]
    findings["a card-like number"] = card_like[:5]
    assert not any(findings.values()), {k: v for k, v in findings.items() if v}
