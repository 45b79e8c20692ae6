"""Two replicas, customers racing for a small hall: the checker finds no double booking, no
unpaid confirmation, no lost or doubled event, no 5xx — with Redis up, and with Redis stopped
halfway (PostgreSQL alone arbitrates). The report runs the same scenarios at a larger size."""

from __future__ import annotations

import pytest

from tests.reliability.scenarios import Row, Size, race, race_without_redis
from tests.reliability.stack import Replica, Stack

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.kafka]

SMALL = Size(users=60, spread=4.0, rows=2, columns=6)


def _raced(row: Row) -> None:
    f = row.findings
    assert f.clean, f.problems
    assert row.settle == "settled"
    assert f.bookings["CONFIRMED"] > 0, f.bookings
    assert f.requests > SMALL.users


async def test_replicas_racing_never_double_book(stack: Stack, replicas: list[Replica]) -> None:
    """60 customers on 12 seats through two replicas: every invariant holds at the end."""
    _raced(await race(stack, replicas, SMALL))


async def test_racing_with_redis_stopped_halfway(stack: Stack, replicas: list[Replica]) -> None:
    """The same race with the hold store killed halfway: the database claim still arbitrates,
    and nothing answers 5xx (holds are a fast filter, not a requirement)."""
    row = await race_without_redis(stack, replicas, SMALL)
    _raced(row)
    assert row.findings.faults == 1
