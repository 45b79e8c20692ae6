"""Identity modes: jwt, gateway, gateway+jwt; 401 without identity, 403 without the role."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from booking.entrypoints.identity import mint_token
from booking.entrypoints.settings import AuthMode

from .conftest import BASE, SECRET, ApiFactory, auth, problem, settings_for, token


def _bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def _unsigned(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _claims(user_id: int = 7) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "sub": str(user_id),
        "username": f"{user_id}_john",
        "roles": [{"authority": "ROLE_USER"}],
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(hours=1)).timestamp()),
    }


BAD_TOKENS = {
    "expired": (
        mint_token(SECRET, 7, ttl=timedelta(hours=-1)),
        "TOKEN_EXPIRED",
    ),
    "wrong signature": (
        mint_token(base64.b64encode(b"z" * 64).decode(), 7),
        "INVALID_TOKEN",
    ),
    "alg none": (_unsigned(_claims()), "INVALID_TOKEN"),
    "garbage": ("not.a.jwt", "INVALID_TOKEN"),
    "no exp": (
        jwt.encode({"sub": "7", "roles": []}, base64.b64decode(SECRET), algorithm="HS512"),
        "INVALID_TOKEN",
    ),
    "non-numeric sub": (
        jwt.encode(_claims() | {"sub": "john"}, base64.b64decode(SECRET), algorithm="HS512"),
        "INVALID_TOKEN",
    ),
    "rsa algorithm name": (
        # An HS256 signature presented as RS256: the algorithm is pinned to HMAC.
        ".".join(
            [
                base64.urlsafe_b64encode(b'{"alg":"RS256","typ":"JWT"}').decode().rstrip("="),
                *jwt.encode(_claims(), base64.b64decode(SECRET), algorithm="HS256").split(".")[1:],
            ]
        ),
        "INVALID_TOKEN",
    ),
}


@pytest.mark.parametrize("name", list(BAD_TOKENS))
async def test_bad_tokens_are_401_and_change_nothing(make_api: ApiFactory, name: str) -> None:
    """Expired, wrongly signed, alg none, garbage, missing exp: 401, nothing created."""
    api = await make_api()
    bad, code = BAD_TOKENS[name]
    response = await api.client.post(BASE, json={"showId": 1, "seatIds": [1]}, headers=_bearer(bad))
    problem(response, 401, code)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert not api.world.db.state.bookings


async def test_no_identity_is_401_in_every_mode(make_api: ApiFactory) -> None:
    """No token and no headers: 401 whatever the mode, on every booking route."""
    for mode in AuthMode:
        api = await make_api(settings_for(mode))
        for method, path in (("GET", BASE), ("POST", BASE), ("GET", f"{BASE}/1")):
            problem(await api.client.request(method, path), 401, "UNAUTHENTICATED")


async def test_identity_and_role_come_before_parameters_and_body(make_api: ApiFactory) -> None:
    """A bad query, path or body from a caller without identity is 401, and from a caller
    without the role 403: nothing about the request is examined before who sends it."""
    api = await make_api(settings_for(AuthMode.JWT))
    for method, path, body in (
        ("GET", f"{BASE}?limit=0&status=NOPE", None),
        ("GET", f"{BASE}/not-a-number", None),
        ("POST", BASE, b"{not json"),
    ):
        response = await api.client.request(method, path, content=body)
        problem(response, 401, "UNAUTHENTICATED")
    admin = "/api/v1/admin/outbox?limit=-5"
    problem(await api.client.get(admin), 401, "UNAUTHENTICATED")
    problem(await api.client.get(admin, headers=auth()), 403, "FORBIDDEN")


async def test_jwt_mode_ignores_identity_headers(make_api: ApiFactory) -> None:
    """In jwt mode X-User-* headers alone are no identity, and never override the token."""
    api = await make_api(settings_for(AuthMode.JWT))
    forged = {"X-User-Id": "8", "X-User-Roles": "ROLE_ADMIN"}
    problem(await api.client.get(BASE, headers=forged), 401, "UNAUTHENTICATED")
    created = await api.booked([1])
    assert created["userId"] == 7
    mixed = await api.client.get(BASE, headers=auth(7) | forged)
    assert [b["userId"] for b in mixed.json()["items"]] == [7]


async def test_both_role_spellings_are_accepted(make_api: ApiFactory) -> None:
    """`ROLE_USER` and `USER` are the same role."""
    api = await make_api()
    for roles in (("ROLE_USER",), ("USER",), ("role_user",)):
        response = await api.client.get(BASE, headers=_bearer(token(7, roles)))
        assert response.status_code == 200, roles


async def test_missing_role_is_403(make_api: ApiFactory) -> None:
    """A valid token without USER/ADMIN is 403 on bookings; a service account may read seats."""
    api = await make_api()
    created = await api.booked([2])
    nobody = _bearer(token(7, ()))
    problem(await api.client.get(BASE, headers=nobody), 403, "FORBIDDEN")
    service = _bearer(token(99, ("ROLE_SERVICE_ACCOUNT",)))
    problem(
        await api.client.post(BASE, json={"showId": 1, "seatIds": [3]}, headers=service),
        403,
        "FORBIDDEN",
    )
    seats = await api.client.get(f"{BASE}/{created['bookingId']}/seats", headers=service)
    assert seats.status_code == 200


async def test_gateway_mode_trusts_headers(make_api: ApiFactory) -> None:
    """In gateway mode the X-User-* headers are the identity (both role spellings)."""
    api = await make_api(settings_for(AuthMode.GATEWAY))
    headers = {"X-User-ID": "7", "X-User-Name": "7_john", "X-User-Roles": "USER"}
    response = await api.client.post(BASE, json={"showId": 1, "seatIds": [4]}, headers=headers)
    assert response.status_code == 201
    assert response.json()["userId"] == 7
    problem(
        await api.client.get(BASE, headers={"X-User-Id": "seven", "X-User-Roles": "ROLE_USER"}),
        401,
        "INVALID_IDENTITY",
    )
    problem(
        await api.client.get(BASE, headers={"X-User-Id": "7", "X-User-Roles": "ROLE_GUEST"}),
        403,
        "FORBIDDEN",
    )


async def test_gateway_jwt_refuses_forged_roles(make_api: ApiFactory) -> None:
    """gateway+jwt: X-User-Roles claiming a role the verified token lacks is refused."""
    api = await make_api(settings_for(AuthMode.GATEWAY_JWT))
    created = await api.booked([5], user_id=8)
    forged = auth(7) | {"X-User-Id": "7", "X-User-Roles": "ROLE_USER,ROLE_SERVICE_ACCOUNT"}
    response = await api.client.get(f"{BASE}/{created['bookingId']}/seats", headers=forged)
    problem(response, 401, "IDENTITY_MISMATCH")


async def test_gateway_jwt_refuses_a_contradicting_user_id(make_api: ApiFactory) -> None:
    """gateway+jwt: X-User-Id naming another user than the token's subject is refused."""
    api = await make_api(settings_for(AuthMode.GATEWAY_JWT))
    response = await api.client.get(BASE, headers=auth(7) | {"X-User-Id": "8"})
    problem(response, 401, "IDENTITY_MISMATCH")
    name = await api.client.get(BASE, headers=auth(7) | {"X-User-Name": "7_mallory"})
    problem(name, 401, "IDENTITY_MISMATCH")


async def test_gateway_jwt_accepts_agreeing_headers(make_api: ApiFactory) -> None:
    """gateway+jwt: headers that agree with the token (as the gateway sends them) pass."""
    api = await make_api(settings_for(AuthMode.GATEWAY_JWT))
    headers = auth(7) | {"X-User-Id": "7", "X-User-Name": "7_user", "X-User-Roles": "ROLE_USER"}
    response = await api.client.post(BASE, json={"showId": 1, "seatIds": [6]}, headers=headers)
    assert response.status_code == 201, response.text
    problem(
        await api.client.get(BASE, headers={"X-User-Id": "7", "X-User-Roles": "ROLE_USER"}),
        401,
        "UNAUTHENTICATED",
    )


async def test_gateway_jwt_service_account_reads_seats_for_the_owner(
    make_api: ApiFactory,
) -> None:
    """A verified service account may name the booking owner in X-User-Id (the Notification
    Service's callback) and read the seats."""
    api = await make_api(settings_for(AuthMode.GATEWAY_JWT))
    created = await api.booked([7], user_id=8)
    headers = _bearer(token(99, ("ROLE_SERVICE_ACCOUNT",))) | {
        "X-User-Id": "8",
        "X-User-Name": "8_null",
        "X-User-Roles": "ROLE_SERVICE_ACCOUNT",
    }
    response = await api.client.get(f"{BASE}/{created['bookingId']}/seats", headers=headers)
    assert response.status_code == 200
    assert [s["seatId"] for s in response.json()] == [7]


async def test_trusted_service_network_may_call_with_headers_only(make_api: ApiFactory) -> None:
    """gateway+jwt: the Notification Service (no JWT) is identified by its headers only when
    it calls from a configured service network; from elsewhere it needs a token."""
    notification = {
        "X-User-Id": "8",
        "X-User-Name": "8_null",
        "X-User-Roles": "ROLE_SERVICE_ACCOUNT",
    }
    strict = await make_api(settings_for(AuthMode.GATEWAY_JWT))
    created = await strict.booked([8], user_id=8)
    url = f"{BASE}/{created['bookingId']}/seats"
    problem(await strict.client.get(url, headers=notification), 401, "UNAUTHENTICATED")

    trusting = await make_api(
        settings_for(AuthMode.GATEWAY_JWT, trusted_service_networks=("127.0.0.0/8",))
    )
    response = await trusting.client.get(url, headers=notification)
    assert response.status_code == 200
    assert [s["seatId"] for s in response.json()] == [8]
    forged = auth(7) | {"X-User-Roles": "ROLE_SERVICE_ACCOUNT"}
    problem(await trusting.client.get(url, headers=forged), 401, "IDENTITY_MISMATCH")
