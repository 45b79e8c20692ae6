"""The TheaterCatalog contract, run on the local inventory and on the HTTP adapter against the
Theater Service peer."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from booking.adapters.http.theater import HttpTheaterCatalog
from booking.adapters.sandbox.theater import LocalSeatInventory
from booking.domain.booking import SeatType
from booking.domain.identity import Principal
from booking.domain.money import Money
from booking.ports.errors import SeatsUnavailable, ShowNotFound
from booking.ports.theater import SeatInfo, TheaterCatalog

CALLER = Principal.of(7, "7_user", ["ROLE_USER"])
_shows = itertools.count(random.randrange(100_000, 200_000) * 10)


@dataclass
class Backend:
    catalog: TheaterCatalog
    seed: Callable[[int, list[SeatInfo]], None]
    status: Callable[[int, int], str]


@pytest.fixture(params=["local", "http"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "local":
        local = LocalSeatInventory()
        yield Backend(local, local.add_show, lambda show, seat: local.status(show, seat).value)
        return
    peer = request.getfixturevalue("theater_service")

    def seed(show: int, seats: list[SeatInfo]) -> None:
        peer.seed_show(
            show,
            [
                {
                    "seatId": s.seat_id,
                    "seatNumber": s.seat_number,
                    "seatType": s.seat_type.value,
                    "price": s.price.to_major(),
                    "status": "AVAILABLE",
                }
                for s in seats
            ],
        )

    http = HttpTheaterCatalog(base_url=peer.url, timeout=5.0)
    yield Backend(http, seed, lambda show, seat: peer.seat_statuses(show)[seat])
    await http.aclose()


@pytest.fixture
def show(backend: Backend) -> int:
    show_id = next(_shows)
    backend.seed(
        show_id,
        [
            SeatInfo(show_id * 10 + i, f"1-{i}", SeatType.GOLD, Money(250_00 + i * 100))
            for i in range(1, 6)
        ],
    )
    return show_id


def seat(show: int, i: int) -> int:
    return show * 10 + i


async def test_available_seats_come_with_number_type_and_price(backend: Backend, show: int) -> None:
    """All asked seats available: each with its number, type and price, in the asked order."""
    found = await backend.catalog.seats(show, [seat(show, 2), seat(show, 1)], CALLER)
    assert found == [
        SeatInfo(seat(show, 2), "1-2", SeatType.GOLD, Money(250_00 + 200)),
        SeatInfo(seat(show, 1), "1-1", SeatType.GOLD, Money(250_00 + 100)),
    ]


async def test_a_taken_seat_is_named_never_a_subset(backend: Backend, show: int) -> None:
    """One seat locked: the answer names it; none locked at all: every seat named."""
    await backend.catalog.lock(show, [seat(show, 1)], CALLER)
    with pytest.raises(SeatsUnavailable) as some:
        await backend.catalog.seats(show, [seat(show, 1), seat(show, 2)], CALLER)
    assert some.value.seat_ids == [seat(show, 1)]
    with pytest.raises(SeatsUnavailable) as every:
        await backend.catalog.seats(show, [seat(show, 1)], CALLER)
    assert every.value.seat_ids == [seat(show, 1)]


async def test_unknown_show_is_not_found(backend: Backend) -> None:
    """A show the inventory does not know."""
    with pytest.raises(ShowNotFound):
        await backend.catalog.seats(next(_shows), [1], CALLER)


async def test_lock_is_all_or_nothing(backend: Backend, show: int) -> None:
    """A lock that meets one taken seat changes nothing."""
    await backend.catalog.lock(show, [seat(show, 1), seat(show, 2)], CALLER)
    with pytest.raises(SeatsUnavailable):
        await backend.catalog.lock(show, [seat(show, 2), seat(show, 3)], CALLER)
    assert backend.status(show, seat(show, 3)) == "AVAILABLE"
    assert backend.status(show, seat(show, 2)) == "LOCKED"


async def test_book_after_lock_and_again_is_done(backend: Backend, show: int) -> None:
    """Book moves LOCKED to BOOKED; booking the same seats again counts as done."""
    chosen = [seat(show, 4), seat(show, 5)]
    await backend.catalog.lock(show, chosen, CALLER)
    await backend.catalog.book(show, chosen, CALLER)
    await backend.catalog.book(show, chosen, CALLER)
    assert [backend.status(show, s) for s in chosen] == ["BOOKED", "BOOKED"]


async def test_release_frees_locked_seats_and_is_idempotent(backend: Backend, show: int) -> None:
    """Release twice: the seats are AVAILABLE again; a booked seat is not released."""
    await backend.catalog.lock(show, [seat(show, 1), seat(show, 2)], CALLER)
    await backend.catalog.book(show, [seat(show, 1), seat(show, 2)], CALLER)
    await backend.catalog.lock(show, [seat(show, 3)], CALLER)
    await backend.catalog.release(show, [seat(show, 3)], CALLER)
    await backend.catalog.release(show, [seat(show, 3), seat(show, 1)], CALLER)
    assert backend.status(show, seat(show, 3)) == "AVAILABLE"
    assert backend.status(show, seat(show, 1)) == "BOOKED"
