"""Hundreds of concurrent creates for overlapping seats on the harness."""

from __future__ import annotations

import asyncio
import random

import pytest

from booking.application.errors import SeatConflict
from booking.domain.booking import Booking
from tests.support.harness import SHOW_ID, Harness, small_hall


@pytest.mark.parametrize("hold_store_up", [True, False])
async def test_concurrent_creates_never_share_a_seat(hold_store_up: bool) -> None:
    """Winners' seats are disjoint and every loser got a conflict, with or without holds."""
    h = Harness()
    hall = small_hall(40)
    h.theater.add_show(SHOW_ID, hall)
    h.locks.down = not hold_store_up
    rng = random.Random(7)
    ids = [s.seat_id for s in hall]
    requests = [rng.sample(ids, rng.randint(1, 4)) for _ in range(300)]

    async def attempt(user: int, seats: list[int]) -> Booking | SeatConflict:
        try:
            return await h.create(h.user(user), SHOW_ID, seats)
        except SeatConflict as conflict:
            return conflict

    outcomes = await asyncio.gather(*(attempt(i, s) for i, s in enumerate(requests)))
    winners = [o for o in outcomes if isinstance(o, Booking)]
    losers = [o for o in outcomes if isinstance(o, SeatConflict)]
    assert len(winners) + len(losers) == len(requests)
    taken = [seat for w in winners for seat in w.seat_ids]
    assert len(taken) == len(set(taken))
    assert winners and losers
    for loser in losers:
        assert loser.seat_ids and set(loser.seat_ids) <= set(ids)
