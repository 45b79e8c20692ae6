"""Fixtures of the reliability tests: one private stack for the package, and replicas on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.reliability.stack import Replica, Stack, Timing, start_all
from tests.support.peers import PaymentPeer, TheaterPeer
from tests.support.postgres import PostgresServer

# Short holds so that expiry, crash recovery and late payments all happen within a test.
TIMING = Timing(hold_ttl=5, grace=2, reconcile_interval=0.5, relay_interval=0.1, http_timeout=2.0)


@pytest.fixture(scope="package")
async def stack(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: PostgresServer,
    payment_service: PaymentPeer,
    theater_service: TheaterPeer,
) -> AsyncIterator[Stack]:
    """A database of its own, a private Redis and broker, the session's peers, each behind a
    proxy the tests may cut; replicas made from it are stopped with it."""
    payment_service.clear_faults()
    theater_service.clear_faults()
    built = Stack(
        tmp_path_factory.mktemp("reliability"),
        postgres_server,
        TIMING,
        payment=payment_service,
        theater=theater_service,
    )
    try:
        await built.start()
        yield built
    finally:
        await built.close()


@pytest.fixture(scope="package")
async def replicas(stack: Stack) -> list[Replica]:
    """Two replicas of `booking serve` on one database, Redis and broker, no creation limit."""
    pair = [stack.replica("a"), stack.replica("b")]
    await start_all(pair)
    return pair
