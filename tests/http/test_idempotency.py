"""Idempotency-Key on create: replay, reuse with another body, in flight, 5xx not kept."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from booking.entrypoints.idempotency import fingerprint

from .conftest import BASE, SHOW, Api, auth, problem


async def test_same_key_and_body_answers_the_first_answer(api: Api) -> None:
    """A retry with the same key and body gets the same 201 and booking; nothing new is made."""
    first = await api.create([1, 2], **{"Idempotency-Key": "k-1"})
    again = await api.create([1, 2], **{"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert len(api.world.db.state.bookings) == 1
    assert api.world.payment.creates == 1


async def test_same_key_other_body_is_422(api: Api) -> None:
    """The same key with another body is refused and books nothing."""
    await api.create([1], **{"Idempotency-Key": "k-2"})
    response = await api.create([2], **{"Idempotency-Key": "k-2"})
    problem(response, 422, "IDEMPOTENCY_KEY_REUSED")
    assert len(api.world.db.state.bookings) == 1


async def test_keys_are_per_caller(api: Api) -> None:
    """Two users may use the same key independently."""
    assert (await api.create([1], user_id=7, **{"Idempotency-Key": "same"})).status_code == 201
    assert (await api.create([2], user_id=8, **{"Idempotency-Key": "same"})).status_code == 201
    assert len(api.world.db.state.bookings) == 2


async def test_repeat_while_in_flight_is_409(api: Api) -> None:
    """A repeat while the first request still runs is 409; the first then completes."""
    gate = asyncio.Event()
    original = api.world.theater.seats

    async def slow_seats(*args: object, **kwargs: object) -> object:
        await gate.wait()
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    api.world.theater.seats = slow_seats  # type: ignore[method-assign]
    first = asyncio.create_task(api.create([3], **{"Idempotency-Key": "k-3"}))
    for _ in range(100):
        if api.world.idempotency._keys:
            break
        await asyncio.sleep(0.01)
    second = await api.create([3], **{"Idempotency-Key": "k-3"})
    problem(second, 409, "IDEMPOTENCY_KEY_IN_USE")
    gate.set()
    assert (await asyncio.wait_for(first, 10)).status_code == 201


async def test_4xx_answers_are_kept(api: Api) -> None:
    """A 409 conflict is the key's answer: the retry gets the same 409 problem."""
    await api.booked([4])
    first = await api.create([4], user_id=8, **{"Idempotency-Key": "k-4"})
    problem(first, 409, "SEAT_LOCK_CONFLICT")
    again = await api.create([4], user_id=8, **{"Idempotency-Key": "k-4"})
    problem(again, 409, "SEAT_LOCK_CONFLICT")
    assert again.json() == first.json()


async def test_5xx_is_not_kept(api: Api) -> None:
    """After a 503 the same key may be used again at once, and then succeeds."""
    api.world.theater.down = True
    failed = await api.create([5], **{"Idempotency-Key": "k-5"})
    problem(failed, 503, "DEPENDENCY_UNAVAILABLE")
    api.world.theater.down = False
    retried = await api.create([5], **{"Idempotency-Key": "k-5"})
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers


async def test_answers_expire_after_24_hours(api: Api) -> None:
    """Past the keep time the key is new again (the stored answer is gone)."""
    first = await api.create([6], **{"Idempotency-Key": "k-6"})
    api.world.clock.advance(timedelta(hours=24, seconds=1))
    await api.client.post(f"{BASE}/{first.json()['bookingId']}/cancel", headers=auth())
    await api.relay()
    second = await api.create([6], **{"Idempotency-Key": "k-6"})
    assert second.status_code == 201
    assert second.json()["bookingId"] != first.json()["bookingId"]


@pytest.mark.parametrize("key", ["", " ", "x" * 256, "héllo", "tab\tkey"])
async def test_bad_keys_are_400(api: Api, key: str) -> None:
    """Keys are 1 to 255 visible ASCII characters."""
    response = await api.client.post(
        BASE,
        content=f'{{"showId": {SHOW}, "seatIds": [7]}}'.encode(),
        headers=[
            *auth().items(),
            ("Content-Type", "application/json"),
            ("Idempotency-Key", key.encode()),
        ],
    )
    problem(response, 400, "INVALID_IDEMPOTENCY_KEY")
    assert not api.world.db.state.bookings


async def test_a_255_character_key_works(api: Api) -> None:
    """The longest allowed key is accepted and replayed."""
    key = "k" * 255
    first = await api.create([8], **{"Idempotency-Key": key})
    again = await api.create([8], **{"Idempotency-Key": key})
    assert first.status_code == again.status_code == 201
    assert again.json()["bookingId"] == first.json()["bookingId"]


def test_fingerprint_separates_method_path_and_body() -> None:
    """The request fingerprint cannot be forged by moving bytes between its parts."""
    assert fingerprint("POST", "/a", b"bc") != fingerprint("POST", "/ab", b"c")
    assert fingerprint("POST", "/a", b"x") == fingerprint("POST", "/a", b"x")
