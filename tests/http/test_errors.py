"""Every error of issue 4 as a problem document: 400/422, 404, 409, 413, 503, never a 500."""

from __future__ import annotations

import json

import pytest

from booking.adapters.sandbox.theater import SeatStatus

from .conftest import BASE, SHOW, Api, auth, problem

MALFORMED = [b"{", b"not json", b'{"showId": 1, "seatIds": [1,', b"\xff\xfe\x00", b""]

INVALID = [
    ({"showId": 1}, "$.seatIds"),
    ({"seatIds": [1]}, "$.showId"),
    ({"showId": 1, "seatIds": [1], "extra": True}, "$.extra"),
    ({"showId": 1, "seatIds": []}, "$.seatIds"),
    ({"showId": 1, "seatIds": list(range(1, 12))}, "$.seatIds"),
    ({"showId": 1, "seatIds": [0]}, "$.seatIds[0]"),
    ({"showId": 1, "seatIds": [-5]}, "$.seatIds[0]"),
    ({"showId": 1, "seatIds": [1.5]}, "$.seatIds[0]"),
    ({"showId": 1, "seatIds": ["1"]}, "$.seatIds[0]"),
    ({"showId": 1, "seatIds": [True]}, "$.seatIds[0]"),
    ({"showId": 1, "seatIds": [2**63]}, "$.seatIds[0]"),
    ({"showId": "1", "seatIds": [1]}, "$.showId"),
    ({"showId": 0, "seatIds": [1]}, "$.showId"),
    ({"showId": None, "seatIds": [1]}, "$.showId"),
    ({"showId": 1, "seatIds": None}, "$.seatIds"),
    ({"showId": 1, "seatIds": 5}, "$.seatIds"),
    ([1, 2], "$"),
    ("text", "$"),
]


@pytest.mark.parametrize("body", MALFORMED)
async def test_malformed_body_is_400(api: Api, body: bytes) -> None:
    """A body that is not JSON at all is 400 MALFORMED_REQUEST."""
    response = await api.client.post(
        BASE, content=body, headers=auth() | {"Content-Type": "application/json"}
    )
    problem(response, 400, "MALFORMED_REQUEST")


@pytest.mark.parametrize(("body", "where"), INVALID)
async def test_invalid_body_is_422_naming_the_field(api: Api, body: object, where: str) -> None:
    """Missing, unknown, mistyped, out-of-range fields: 422 naming the field, in our words."""
    response = await api.client.post(BASE, json=body, headers=auth())
    found = problem(response, 422, "VALIDATION_FAILED")
    assert [e["field"] for e in found["errors"]] == [where], found
    assert not api.world.db.state.bookings


async def test_integral_numbers_are_integers(api: Api) -> None:
    """JSON has one number type: 1.0 is the id 1 (1.5 is refused above)."""
    response = await api.client.post(
        BASE,
        content=b'{"showId": 1.0, "seatIds": [3.0, 4]}',
        headers=auth() | {"Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text
    assert [s["seatId"] for s in response.json()["seats"]] == [3, 4]


async def test_duplicated_seats_are_422(api: Api) -> None:
    """The same seat twice is refused before anything is held."""
    response = await api.create([5, 5])
    problem(response, 422, "VALIDATION_FAILED")
    assert not api.world.db.state.bookings


@pytest.mark.parametrize("path_id", ["abc", "0", "-1", "1.5", "99999999999999999999", "%20"])
async def test_non_id_in_path_is_400(api: Api, path_id: str) -> None:
    """A path id that is not a positive 64-bit integer is 400, on every booking route."""
    for suffix, method in (
        ("", "GET"),
        ("/seats", "GET"),
        ("/verify-payment", "GET"),
        ("/cancel", "POST"),
    ):
        response = await api.client.request(method, f"{BASE}/{path_id}{suffix}", headers=auth())
        problem(response, 400, "INVALID_BOOKING_ID")


async def test_unknown_and_foreign_bookings_look_the_same(api: Api) -> None:
    """Another user's booking answers exactly like an unknown one: 404, nothing revealed."""
    created = await api.booked([3])
    theirs = await api.client.get(f"{BASE}/{created['bookingId']}", headers=auth(8))
    unknown = await api.client.get(f"{BASE}/424242", headers=auth(8))
    a = problem(theirs, 404, "BOOKING_NOT_FOUND")
    b = problem(unknown, 404, "BOOKING_NOT_FOUND")
    assert a.keys() == b.keys()
    for suffix, method in (("/seats", "GET"), ("/verify-payment", "GET"), ("/cancel", "POST")):
        response = await api.client.request(
            method, f"{BASE}/{created['bookingId']}{suffix}", headers=auth(8)
        )
        problem(response, 404, "BOOKING_NOT_FOUND")
    assert api.world.booking(created["bookingId"]).status.value == "PENDING"


async def test_taken_seats_are_409_naming_them(api: Api) -> None:
    """A seat held by another booking: 409 SEAT_LOCK_CONFLICT with the taken seat ids only."""
    await api.booked([10, 11])
    response = await api.create([9, 11], user_id=8)
    body = problem(response, 409, "SEAT_LOCK_CONFLICT")
    assert body["seatIds"] == [11]
    assert len(api.world.db.state.bookings) == 1
    assert api.world.theater.status(SHOW, 9) is SeatStatus.AVAILABLE


async def test_seats_booked_at_the_theater_are_409(api: Api) -> None:
    """The inventory says a seat is not available (Theater 206/204): 409, never a subset."""
    api.world.theater._shows[SHOW][12].status = SeatStatus.BOOKED
    body = problem(await api.create([12, 13]), 409, "SEAT_LOCK_CONFLICT")
    assert body["seatIds"] == [12]
    assert not api.world.db.state.bookings


async def test_unknown_show_is_404(api: Api) -> None:
    """A show the inventory does not know: 404 SHOW_NOT_FOUND, nothing kept."""
    problem(await api.create([1], show_id=999), 404, "SHOW_NOT_FOUND")
    assert not api.world.db.state.bookings


async def test_foreign_session_on_verify_is_409(api: Api) -> None:
    """verify-payment with a sessionId that is not the booking's own is 409, no change."""
    mine = await api.booked([21])
    other = await api.booked([22])
    response = await api.client.get(
        f"{BASE}/{mine['bookingId']}/verify-payment",
        params={"sessionId": other["paymentSessionId"]},
        headers=auth(),
    )
    problem(response, 409, "PAYMENT_SESSION_MISMATCH")


async def test_body_over_the_limit_is_413(api: Api) -> None:
    """A body above BOOKING_MAX_BODY_BYTES is 413 before it is parsed."""
    body = json.dumps({"showId": 1, "seatIds": [1], "pad": "x" * 5000}).encode()
    response = await api.client.post(
        BASE, content=body, headers=auth() | {"Content-Type": "application/json"}
    )
    problem(response, 413, "PAYLOAD_TOO_LARGE")


async def test_theater_down_is_503_with_retry_after(api: Api) -> None:
    """An unreachable inventory: 503 DEPENDENCY_UNAVAILABLE with Retry-After, nothing kept."""
    api.world.theater.down = True
    response = await api.create([1])
    body = problem(response, 503, "DEPENDENCY_UNAVAILABLE")
    assert response.headers["retry-after"] == "5"
    assert body["dependency"] == "theater"
    assert not api.world.db.state.bookings


async def test_payment_down_fails_the_booking_and_answers_503(api: Api) -> None:
    """Checkout cannot open: 503, the booking is committed FAILED and its seats come back."""
    api.world.payment.down = True
    response = await api.create([2])
    problem(response, 503, "DEPENDENCY_UNAVAILABLE")
    (booking,) = api.world.db.state.bookings.values()
    assert booking.status.value == "FAILED"
    await api.relay()
    assert api.world.theater.status(SHOW, 2) is SeatStatus.AVAILABLE


async def test_database_down_is_503_on_reads(api: Api) -> None:
    """The database away: reads answer 503 with Retry-After, not 500."""
    api.world.db.down = True
    response = await api.client.get(BASE, headers=auth())
    problem(response, 503, "DEPENDENCY_UNAVAILABLE")
    assert "retry-after" in response.headers


@pytest.mark.parametrize(
    "params",
    [{"status": "NOPE"}, {"limit": "0"}, {"limit": "101"}, {"limit": "x"}, {"cursor": "garbage!"}],
)
async def test_bad_list_parameters_are_400(api: Api, params: dict[str, str]) -> None:
    """Unknown status, a limit out of 1..100 and a cursor we did not make: 400."""
    response = await api.client.get(BASE, params=params, headers=auth())
    assert response.status_code == 400
    problem(response, 400, response.json()["errorCode"])


async def test_unknown_route_and_method_are_problems(api: Api) -> None:
    """404 and 405 from the router are problem documents too."""
    problem(await api.client.get("/api/v1/nothing", headers=auth()), 404, "NOT_FOUND")
    problem(await api.client.delete(f"{BASE}/1", headers=auth()), 405, "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize(
    "body",
    [
        b'{"showId": 1e400, "seatIds": [1]}',
        b'{"showId": 1, "seatIds": [[[[[[[[[[1]]]]]]]]]]}',
        b'{"showId": 1, "seatIds": [1], "showId": 2}',
        b'{"showId": -0, "seatIds": [NaN]}',
        b'{"showId": 1, "seatIds": [1]}garbage',
        b'{"\\ud800": 1}',
        b"[" * 1000,
    ],
)
async def test_hostile_bodies_never_500(api: Api, body: bytes) -> None:
    """Odd JSON is always a 4xx problem document, never a 500 or library text."""
    response = await api.client.post(
        BASE, content=body, headers=auth() | {"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500, response.text
    problem(response, response.status_code, response.json()["errorCode"])
