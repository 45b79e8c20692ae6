"""HttpTheaterCatalog against the real Theater Service stand-in: every path, the traps, faults."""

from __future__ import annotations

import itertools
import random
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
import stamina
from stamina.instrumentation import RetryDetails

from booking.adapters.http._common import RetryPolicy
from booking.adapters.http.directory import StaticServiceDirectory
from booking.adapters.http.theater import HttpTheaterCatalog
from booking.domain.booking import SeatType
from booking.domain.identity import Principal
from booking.domain.money import Money
from booking.ports.errors import (
    SeatsUnavailable,
    ShowNotFound,
    TheaterRejected,
    TheaterUnavailable,
)
from booking.ports.theater import SeatInfo
from tests.support.peers import TheaterPeer

FAST_RETRY = RetryPolicy(
    attempts=3, timeout=10.0, wait_initial=0.01, wait_max=0.05, wait_jitter=0.01
)
USER = Principal.of(7, "7_john", ["ROLE_USER"])
_show_ids = itertools.count(random.randrange(10**6, 10**9, 1000))

VERIFY, LOCK, BOOK, RELEASE = (
    "/internal/seats/verify",
    "/internal/seats/lock",
    "/internal/seats/book",
    "/internal/seats/release",
)


@pytest.fixture
def theater(theater_service: TheaterPeer) -> Iterator[TheaterPeer]:
    theater_service.clear_faults()
    theater_service.clear_requests()
    yield theater_service
    theater_service.clear_faults()


@pytest.fixture
async def catalog(theater: TheaterPeer) -> AsyncIterator[HttpTheaterCatalog]:
    cat = HttpTheaterCatalog(base_url=theater.url, timeout=0.5, retry=FAST_RETRY)
    yield cat
    await cat.aclose()


@pytest.fixture
def show(theater: TheaterPeer) -> int:
    """A fresh show: seats 1..4 = AVAILABLE (SILVER 150, GOLD 250.5, GOLD 250.5, PLATINUM 400)."""
    show_id = next(_show_ids)
    theater.seed_show(
        show_id,
        [
            {"seatId": show_id + 1, "seatNumber": "1-1", "seatType": "SILVER", "price": 150.0},
            {"seatId": show_id + 2, "seatNumber": "2-1", "seatType": "GOLD", "price": 250.5},
            {"seatId": show_id + 3, "seatNumber": "2-2", "seatType": "GOLD", "price": 250.5},
            {"seatId": show_id + 4, "seatNumber": "3-1", "seatType": "PLATINUM", "price": 400.0},
        ],
    )
    return show_id


def seats(show: int, *numbers: int) -> list[int]:
    return [show + n for n in numbers]


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_verify_answers_every_seat_in_the_asked_order(
    catalog: HttpTheaterCatalog, show: int
) -> None:
    """A 200 answers number, type and price (as Money) of every asked seat, in order."""
    answer = await catalog.seats(show, seats(show, 4, 2), USER)
    assert answer == [
        SeatInfo(show + 4, "3-1", SeatType.PLATINUM, Money(40_000)),
        SeatInfo(show + 2, "2-1", SeatType.GOLD, Money(25_050)),
    ]


async def test_a_206_names_the_missing_seats_and_never_answers_a_subset(
    catalog: HttpTheaterCatalog, theater: TheaterPeer, show: int
) -> None:
    """206 (some taken) raises SeatsUnavailable naming exactly the taken seats."""
    theater.set_status(show, show + 2, "BOOKED")
    theater.set_status(show, show + 3, "LOCKED")
    with pytest.raises(SeatsUnavailable) as caught:
        await catalog.seats(show, seats(show, 1, 2, 3), USER)
    assert caught.value.seat_ids == seats(show, 2, 3)
    [answer] = theater.requests(VERIFY)
    assert answer["body"] == {"showId": show, "seatIds": seats(show, 1, 2, 3)}


async def test_a_204_names_every_seat(
    catalog: HttpTheaterCatalog, theater: TheaterPeer, show: int
) -> None:
    """204 (none available) raises SeatsUnavailable naming all asked seats."""
    theater.set_status(show, show + 1, "BOOKED")
    theater.set_status(show, show + 2, "LOCKED")
    with pytest.raises(SeatsUnavailable) as caught:
        await catalog.seats(show, seats(show, 1, 2), USER)
    assert caught.value.seat_ids == seats(show, 1, 2)


async def test_an_unknown_seat_is_unavailable(catalog: HttpTheaterCatalog, show: int) -> None:
    """A seat id the show does not have is named as unavailable (206)."""
    with pytest.raises(SeatsUnavailable) as caught:
        await catalog.seats(show, [show + 1, show + 999], USER)
    assert caught.value.seat_ids == [show + 999]


async def test_an_unknown_show_is_show_not_found(catalog: HttpTheaterCatalog) -> None:
    """Their 204 for an unknown show becomes ShowNotFound (the show read says 404)."""
    with pytest.raises(ShowNotFound):
        await catalog.seats(1, [2, 3], USER)


async def test_verify_retries_a_5xx(
    catalog: HttpTheaterCatalog, theater: TheaterPeer, show: int
) -> None:
    """A 503 on verify (a read) is retried."""
    theater.add_fault("status", VERIFY, status=503, times=1)
    assert len(await catalog.seats(show, seats(show, 1), USER)) == 1
    assert len(theater.requests(VERIFY)) == 2


async def test_a_retried_first_failure_goes_through_stamina(
    catalog: HttpTheaterCatalog, theater: TheaterPeer, show: int
) -> None:
    """The first attempt runs outside stamina; its failure is still stamina's first retry:
    backed off, logged and counted by the retry hooks, with the failure that caused it."""
    seen: list[RetryDetails] = []
    hooks = stamina.instrumentation.get_on_retry_hooks()
    stamina.instrumentation.set_on_retry_hooks([*hooks, seen.append])
    try:
        theater.add_fault("status", VERIFY, status=503, times=1)
        assert len(await catalog.seats(show, seats(show, 1), USER)) == 1
    finally:
        stamina.instrumentation.set_on_retry_hooks(hooks)
    assert [(d.retry_num, type(d.caused_by).__name__) for d in seen] == [(1, "TransientStatus")]
    assert seen[0].wait_for >= FAST_RETRY.wait_initial
    assert len(theater.requests(VERIFY)) == 2


async def test_a_first_attempt_that_spends_the_budget_is_not_repeated(
    theater: TheaterPeer, show: int
) -> None:
    """The retries' time budget counts from the first attempt: a first attempt that times out
    after the whole budget is not repeated."""
    policy = RetryPolicy(attempts=3, timeout=0.2, wait_initial=0.01, wait_max=0.05)
    catalog = HttpTheaterCatalog(base_url=theater.url, timeout=0.3, retry=policy)
    theater.add_fault("delay", VERIFY, seconds=1.0)
    try:
        with pytest.raises(TheaterUnavailable):
            await catalog.seats(show, seats(show, 1), USER)
    finally:
        await catalog.aclose()
    assert len(theater.requests(VERIFY)) == 1


async def test_verify_timing_out_every_time_is_unavailable(
    catalog: HttpTheaterCatalog, theater: TheaterPeer, show: int
) -> None:
    """Latency beyond the timeout on every attempt raises TheaterUnavailable."""
    theater.add_fault("delay", VERIFY, seconds=3.0)
    with pytest.raises(TheaterUnavailable):
        await catalog.seats(show, seats(show, 1), USER)
    assert len(theater.requests(VERIFY)) == FAST_RETRY.attempts


async def test_verify_retries_a_dropped_connection(
    catalog: HttpTheaterCatalog, theater: TheaterPeer, show: int
) -> None:
    """A connection dropped mid-answer on verify is retried."""
    theater.add_fault("drop", VERIFY, times=1)
    assert len(await catalog.seats(show, seats(show, 1, 2), USER)) == 2


async def test_lock_moves_every_seat_to_locked(
    catalog: HttpTheaterCatalog, theater: TheaterPeer, show: int
) -> None:
    """lock sends showId + seatIds and leaves the seats LOCKED."""
    await catalog.lock(show, seats(show, 1, 2), USER)
    statuses = theater.seat_statuses(show)
    assert [statuses[s] for s in seats(show, 1, 2, 3)] == ["LOCKED", "LOCKED", "AVAILABLE"]
    [sent] = theater.requests(LOCK)
    assert sent["body"] == {"showId": show, "seatIds": seats(show, 1, 2)}


async def test_a_refused_lock_names_the_taken_seats(
    catalog: HttpTheaterCatalog, theater: TheaterPeer, show: int
) -> None:
    """Their 500 on lock raises SeatsUnavailable naming the seats that were not AVAILABLE."""
    theater.set_status(show, show + 2, "BOOKED")
    with pytest.raises(SeatsUnavailable) as caught:
        await catalog.lock(show, seats(show, 1, 2), USER)
    assert caught.value.seat_ids == [show + 2]
    assert theater.seat_statuses(show)[show + 1] == "AVAILABLE"  # all or nothing


async def test_a_500_on_available_seats_is_a_server_fault(
    catalog: HttpTheaterCatalog, theater: TheaterPeer, show: int
) -> None:
    """A 500 to a lock whose seats are all still AVAILABLE is TheaterUnavailable, sent once."""
    theater.add_fault("status", LOCK, status=500)
    with pytest.raises(TheaterUnavailable):
        await catalog.lock(show, seats(show, 1), USER)
    assert len(theater.requests(LOCK)) == 1


async def test_a_lock_that_times_out_is_unknown_and_not_repeated(
    catalog: HttpTheaterCatalog, theater: TheaterPeer, show: int
) -> None:
    """A lock answered too late is TheaterUnavailable; it is not sent again."""
    theater.add_fault("delay", LOCK, seconds=3.0, phase="after", times=1)
    with pytest.raises(TheaterUnavailable):
        await catalog.lock(show, seats(show, 1), USER)
    assert len(theater.requests(LOCK)) == 1
    assert theater.seat_statuses(show)[show + 1] == "LOCKED"  # it did happen


async def test_a_lock_is_repeated_only_when_no_connection_was_made(show: int) -> None:
    """Against a closed port lock raises TheaterUnavailable (connect errors are the only retry)."""
    cat = HttpTheaterCatalog(base_url=closed_port_url(), timeout=0.5, retry=FAST_RETRY)
    try:
        with pytest.raises(TheaterUnavailable):
            await cat.lock(show, seats(show, 1), USER)
    finally:
        await cat.aclose()


async def test_book_moves_locked_seats_to_booked(
    catalog: HttpTheaterCatalog, theater: TheaterPeer, show: int
) -> None:
    """book sends showId + seatIds and leaves the seats BOOKED."""
    await catalog.lock(show, seats(show, 1, 2), USER)
    await catalog.book(show, seats(show, 1, 2), USER)
    statuses = theater.seat_statuses(show)
    assert [statuses[s] for s in seats(show, 1, 2)] == ["BOOKED", "BOOKED"]
    [sent] = theater.requests(BOOK)
    assert sent["body"] == {"showId": show, "seatIds": seats(show, 1, 2)}


async def test_a_repeated_book_counts_as_done(
    catalog: HttpTheaterCatalog, theater: TheaterPeer, show: int
) -> None:
    """Their 500 on a repeated book is recovered through the seat map: BOOKED seats are done."""
    await catalog.lock(show, seats(show, 1, 2), USER)
    await catalog.book(show, seats(show, 1, 2), USER)
    theater.clear_requests()
    await catalog.book(show, seats(show, 1, 2), USER)
    assert len(theater.requests(BOOK)) == 1
    assert len(theater.requests(f"/api/v1/shows/{show}/seats", method="GET")) == 1


async def test_a_book_whose_answer_was_lost_is_recovered(
    catalog: HttpTheaterCatalog, theater: TheaterPeer, show: int
) -> None:
    """A book that went through but whose connection dropped is retried, 500s, and is done."""
    await catalog.lock(show, seats(show, 1, 2), USER)
    theater.add_fault("drop", BOOK, phase="after", times=1)
    await catalog.book(show, seats(show, 1, 2), USER)
    assert len(theater.requests(BOOK)) == 2
    statuses = theater.seat_statuses(show)
    assert [statuses[s] for s in seats(show, 1, 2)] == ["BOOKED", "BOOKED"]


async def test_a_book_that_times_out_but_happened_is_done(
    catalog: HttpTheaterCatalog, theater: TheaterPeer, show: int
) -> None:
    """Every attempt answered too late, but the first went through: the seat map says done."""
    await catalog.lock(show, seats(show, 1), USER)
    theater.add_fault("delay", BOOK, seconds=3.0, phase="after")
    await catalog.book(show, seats(show, 1), USER)
    assert theater.seat_statuses(show)[show + 1] == "BOOKED"


async def test_a_partly_booked_set_books_the_rest(
    catalog: HttpTheaterCatalog, theater: TheaterPeer, show: int
) -> None:
    """Seats BOOKED beside seats still LOCKED: the locked rest is booked in one more round."""
    await catalog.lock(show, seats(show, 1, 2), USER)
    theater.set_status(show, show + 1, "BOOKED")
    await catalog.book(show, seats(show, 1, 2), USER)
    assert theater.seat_statuses(show)[show + 2] == "BOOKED"
    assert [r["body"]["seatIds"] for r in theater.requests(BOOK)] == [
        seats(show, 1, 2),
        [show + 2],
    ]


async def test_booking_seats_whose_lock_was_lost_is_rejected(
    catalog: HttpTheaterCatalog, theater: TheaterPeer, show: int
) -> None:
    """Booking seats that are AVAILABLE (the lock was lost) raises TheaterRejected."""
    with pytest.raises(TheaterRejected):
        await catalog.book(show, seats(show, 1), USER)
    assert theater.seat_statuses(show)[show + 1] == "AVAILABLE"


async def test_a_book_that_never_reaches_them_is_unavailable(
    catalog: HttpTheaterCatalog, theater: TheaterPeer, show: int
) -> None:
    """A book timing out before doing anything, every time: TheaterUnavailable, still LOCKED."""
    await catalog.lock(show, seats(show, 1), USER)
    theater.add_fault("delay", BOOK, seconds=3.0)
    with pytest.raises(TheaterUnavailable):
        await catalog.book(show, seats(show, 1), USER)
    assert theater.seat_statuses(show)[show + 1] == "LOCKED"


async def test_release_sends_show_seat_ids_and_is_idempotent(
    catalog: HttpTheaterCatalog, theater: TheaterPeer, show: int
) -> None:
    """release sends `showSeatIds`, frees locked seats, and may be repeated."""
    await catalog.lock(show, seats(show, 1, 2), USER)
    await catalog.release(show, seats(show, 1, 2), USER)
    await catalog.release(show, seats(show, 1, 2), USER)
    statuses = theater.seat_statuses(show)
    assert [statuses[s] for s in seats(show, 1, 2)] == ["AVAILABLE", "AVAILABLE"]
    assert theater.requests(RELEASE)[0]["body"] == {
        "showId": show,
        "showSeatIds": seats(show, 1, 2),
    }


async def test_release_retries_transient_errors(
    catalog: HttpTheaterCatalog, theater: TheaterPeer, show: int
) -> None:
    """A 503 and a dropped connection on release are retried until it is done."""
    await catalog.lock(show, seats(show, 1), USER)
    theater.add_fault("status", RELEASE, status=503, times=1)
    theater.add_fault("drop", RELEASE, times=1)
    await catalog.release(show, seats(show, 1), USER)
    assert theater.seat_statuses(show)[show + 1] == "AVAILABLE"
    assert len(theater.requests(RELEASE)) == 3


async def test_release_failing_every_time_is_unavailable(
    catalog: HttpTheaterCatalog, theater: TheaterPeer, show: int
) -> None:
    """A release that always answers 5xx raises TheaterUnavailable after the bounded attempts."""
    theater.add_fault("status", RELEASE, status=502)
    with pytest.raises(TheaterUnavailable):
        await catalog.release(show, seats(show, 1), USER)
    assert len(theater.requests(RELEASE)) == FAST_RETRY.attempts


async def test_identity_headers_go_with_every_seat_call(
    catalog: HttpTheaterCatalog, theater: TheaterPeer, show: int
) -> None:
    """Verify, lock, book and release carry numeric X-User-Id, name, roles and a request id."""
    await catalog.seats(show, seats(show, 1), USER)
    await catalog.lock(show, seats(show, 1), USER)
    await catalog.book(show, seats(show, 1), Principal.system(7))
    await catalog.release(show, seats(show, 2), USER)
    sent = theater.requests("/internal/seats/")
    assert len(sent) == 4
    for request in sent:
        assert request["headers"]["x-user-id"] == "7"
        assert "ROLE_SERVICE_ACCOUNT" in request["headers"]["x-user-roles"].split(",")
        assert request["headers"]["x-request-id"]
    assert sent[2]["headers"]["x-user-name"] == "7_system"


async def test_ping_and_directory(theater: TheaterPeer) -> None:
    """ping works; the base URL may come from a directory; an unknown name is unavailable."""
    found = HttpTheaterCatalog(directory=StaticServiceDirectory({"theater-service": theater.url}))
    lost = HttpTheaterCatalog(directory=StaticServiceDirectory({}))
    try:
        await found.ping()
        with pytest.raises(TheaterUnavailable):
            await lost.ping()
        with pytest.raises(TheaterUnavailable):
            await lost.release(1, [2], USER)
    finally:
        await found.aclose()
        await lost.aclose()
