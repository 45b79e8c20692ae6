"""Consumer pacts with the Theater Service, written by driving the real HttpTheaterCatalog."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from booking.adapters.http._common import NO_RETRY
from booking.adapters.http.theater import HttpTheaterCatalog
from booking.domain.booking import SeatType
from booking.domain.identity import Principal
from booking.domain.money import Money
from booking.ports.errors import SeatsUnavailable, ShowNotFound
from booking.ports.theater import SeatInfo
from pact import Pact, match
from tests.pact._support import THEATER, USER_ID, expect_identity, new_pact, serving

SEATS = "/api/v1/shows/internal/seats"
CALLER = Principal.of(USER_ID, f"{USER_ID}_john", ["ROLE_USER"])
SHOW = 12
JSON = "application/json"
SEAT_TYPES = r"^(SILVER|GOLD|PLATINUM)$"
SEAT_NUMBER = r"^\d+-\d+$"
STATUSES = r"^(AVAILABLE|LOCKED|BOOKED)$"


def seats_state(statuses: dict[int, str]) -> dict[str, Any]:
    """Provider-state parameters: show 12 with these show-seats (101 GOLD 3-7, 102 GOLD 3-8)."""
    return {
        "showId": SHOW,
        "seats": [
            {
                "seatId": seat_id,
                "seatNumber": f"3-{seat_id - 94}",
                "seatType": "GOLD",
                "price": 250.0,
                "status": status,
            }
            for seat_id, status in statuses.items()
        ],
    }


def valid_seat(seat_id: int) -> dict[str, Any]:
    """An element of the verify/lock/book/release answers."""
    return {
        "seatId": seat_id,
        "seatNumber": match.regex(f"3-{seat_id - 94}", regex=SEAT_NUMBER),
        "seatType": match.regex("GOLD", regex=SEAT_TYPES),
        "seatPrice": match.number(250.0),
    }


def show_seat(seat_id: int, status: str) -> dict[str, Any]:
    """An element of the public seat map."""
    return {
        "showSeatId": seat_id,
        "seatNumber": match.regex(f"3-{seat_id - 94}", regex=SEAT_NUMBER),
        "seatType": match.regex("GOLD", regex=SEAT_TYPES),
        "price": match.number(250.0),
        "status": status,
    }


def seat_call(
    pact: Pact, description: str, operation: str, body: dict[str, Any], state: dict[int, str]
) -> Any:
    interaction = (
        pact.upon_receiving(description)
        .given("a show with seats", seats_state(state))
        .with_request("POST", f"{SEATS}/{operation}")
    )
    return expect_identity(interaction).with_body(body, content_type=JSON)


def seat_map(pact: Pact, description: str, state: dict[int, str]) -> None:
    (
        pact.upon_receiving(description)
        .given("a show with seats", seats_state(state))
        .with_request("GET", f"/api/v1/shows/{SHOW}/seats")
        .will_respond_with(200)
        .with_body([show_seat(s, status) for s, status in state.items()], content_type=JSON)
    )


@asynccontextmanager
async def catalog_for(pact: Pact) -> AsyncIterator[HttpTheaterCatalog]:
    with serving(pact) as url:
        catalog = HttpTheaterCatalog(base_url=url, timeout=5.0, retry=NO_RETRY)
        try:
            yield catalog
        finally:
            await catalog.aclose()


ASK = {"showId": SHOW, "seatIds": [101, 102]}


async def test_verify_all_available() -> None:
    """verify: 200 lists every asked seat with number, type and price."""
    pact = new_pact(THEATER)
    state = {101: "AVAILABLE", 102: "AVAILABLE"}
    (
        seat_call(pact, "a request to verify available seats", "verify", ASK, state)
        .will_respond_with(200)
        .with_body([valid_seat(101), valid_seat(102)], content_type=JSON)
    )
    async with catalog_for(pact) as catalog:
        answer = await catalog.seats(SHOW, [101, 102], CALLER)
    assert answer == [
        SeatInfo(101, "3-7", SeatType.GOLD, Money(25_000)),
        SeatInfo(102, "3-8", SeatType.GOLD, Money(25_000)),
    ]


async def test_verify_some_taken() -> None:
    """verify: 206 lists only the available subset → SeatsUnavailable naming the others."""
    pact = new_pact(THEATER)
    state = {101: "AVAILABLE", 102: "BOOKED"}
    (
        seat_call(pact, "a request to verify seats of which some are taken", "verify", ASK, state)
        .will_respond_with(206)
        .with_body([valid_seat(101)], content_type=JSON)
    )
    async with catalog_for(pact) as catalog:
        with pytest.raises(SeatsUnavailable) as caught:
            await catalog.seats(SHOW, [101, 102], CALLER)
    assert caught.value.seat_ids == [102]


async def test_verify_none_available() -> None:
    """verify: 204 with no body (and the show exists) → SeatsUnavailable naming all seats."""
    pact = new_pact(THEATER)
    state = {101: "BOOKED", 102: "LOCKED"}
    seat_call(
        pact, "a request to verify seats that are all taken", "verify", ASK, state
    ).will_respond_with(204)
    (
        pact.upon_receiving("a request for a show's details")
        .given("a show with seats", seats_state(state))
        .with_request("GET", f"/api/v1/shows/{SHOW}")
        .will_respond_with(200)
        .with_body({"showId": SHOW, "movieTitle": match.str("A Test Movie")}, content_type=JSON)
    )
    async with catalog_for(pact) as catalog:
        with pytest.raises(SeatsUnavailable) as caught:
            await catalog.seats(SHOW, [101, 102], CALLER)
    assert caught.value.seat_ids == [101, 102]


async def test_verify_unknown_show() -> None:
    """verify of an unknown show: 204, and its details 404 → ShowNotFound."""
    pact = new_pact(THEATER)
    interaction = (
        pact.upon_receiving("a request to verify seats of an unknown show")
        .given("no show exists", showId=99)
        .with_request("POST", f"{SEATS}/verify")
    )
    expect_identity(interaction).with_body(
        {"showId": 99, "seatIds": [101]}, content_type=JSON
    ).will_respond_with(204)
    (
        pact.upon_receiving("a request for an unknown show's details")
        .given("no show exists", showId=99)
        .with_request("GET", "/api/v1/shows/99")
        .will_respond_with(404)
    )
    async with catalog_for(pact) as catalog:
        with pytest.raises(ShowNotFound):
            await catalog.seats(99, [101], CALLER)


async def test_lock() -> None:
    """lock: 200 when every seat was AVAILABLE."""
    pact = new_pact(THEATER)
    state = {101: "AVAILABLE", 102: "AVAILABLE"}
    (
        seat_call(pact, "a request to lock available seats", "lock", ASK, state)
        .will_respond_with(200)
        .with_body([valid_seat(101), valid_seat(102)], content_type=JSON)
    )
    async with catalog_for(pact) as catalog:
        await catalog.lock(SHOW, [101, 102], CALLER)


async def test_lock_refused() -> None:
    """lock of a taken seat: 500, then the seat map names it → SeatsUnavailable."""
    pact = new_pact(THEATER)
    state = {101: "AVAILABLE", 102: "BOOKED"}
    seat_call(
        pact, "a request to lock seats of which one is taken", "lock", ASK, state
    ).will_respond_with(500)
    seat_map(pact, "a request for the seat map after a refused lock", state)
    async with catalog_for(pact) as catalog:
        with pytest.raises(SeatsUnavailable) as caught:
            await catalog.lock(SHOW, [101, 102], CALLER)
    assert caught.value.seat_ids == [102]


async def test_book() -> None:
    """book: 200 when every seat was LOCKED."""
    pact = new_pact(THEATER)
    state = {101: "LOCKED", 102: "LOCKED"}
    (
        seat_call(pact, "a request to book locked seats", "book", ASK, state)
        .will_respond_with(200)
        .with_body([valid_seat(101), valid_seat(102)], content_type=JSON)
    )
    async with catalog_for(pact) as catalog:
        await catalog.book(SHOW, [101, 102], CALLER)


async def test_book_repeated() -> None:
    """book of seats already BOOKED: 500, the seat map shows them BOOKED → done."""
    pact = new_pact(THEATER)
    state = {101: "BOOKED", 102: "BOOKED"}
    seat_call(
        pact, "a request to book seats that are already booked", "book", ASK, state
    ).will_respond_with(500)
    seat_map(pact, "a request for the seat map after a refused book", state)
    async with catalog_for(pact) as catalog:
        await catalog.book(SHOW, [101, 102], CALLER)


async def test_release() -> None:
    """release: `showSeatIds`, 200."""
    pact = new_pact(THEATER)
    state = {101: "LOCKED", 102: "LOCKED"}
    (
        seat_call(
            pact,
            "a request to release locked seats",
            "release",
            {"showId": SHOW, "showSeatIds": [101, 102]},
            state,
        )
        .will_respond_with(200)
        .with_body([valid_seat(101), valid_seat(102)], content_type=JSON)
    )
    async with catalog_for(pact) as catalog:
        await catalog.release(SHOW, [101, 102], CALLER)


async def test_health() -> None:
    """ping: the actuator health endpoint answers 200."""
    pact = new_pact(THEATER)
    (
        pact.upon_receiving("a health check")
        .with_request("GET", "/actuator/health")
        .will_respond_with(200)
        .with_body({"status": "UP"}, content_type=JSON)
    )
    async with catalog_for(pact) as catalog:
        await catalog.ping()
