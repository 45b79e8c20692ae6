"""A database that goes away between a publish and its record does not make the event go twice.

Found by the PostgreSQL outage scenario: an event was published, recording it as sent failed
while the database was down, and the next relay to claim the row after the lease published it
again (the Notification Service does not deduplicate events)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from booking.adapters.memory.clock import FakeClock
from booking.adapters.memory.database import (
    MemoryDatabase,
    MemoryOutboxStore,
    MemoryUnitOfWorkFactory,
)
from booking.adapters.memory.seat_lock import MemorySeatLock
from booking.adapters.sandbox.payment import SandboxPaymentGateway
from booking.adapters.sandbox.theater import LocalSeatInventory
from booking.application.payments import ApplyPaymentResult
from booking.application.relay import ActionRunner, OutboxRelay
from booking.application.settings import SagaSettings
from booking.ports.errors import DatabaseUnavailable
from booking.ports.outbox import MessageKind, OutboxMessage
from booking.ports.telemetry import NullTelemetry


class Publisher:
    def __init__(self) -> None:
        self.published: list[str] = []

    async def publish(self, message: OutboxMessage) -> None:
        self.published.append(message.message_id)

    async def ping(self) -> None:
        return None


class DownForAWhile(MemoryOutboxStore):
    """Recording a row as sent fails `failures` times (the database is away), then works."""

    def __init__(self, db: MemoryDatabase, failures: int) -> None:
        super().__init__(db)
        self.failures = failures
        self.tries = 0

    async def mark_sent(self, message_id: str, owner: str, now: datetime) -> None:
        self.tries += 1
        if self.tries <= self.failures:
            raise DatabaseUnavailable("database unavailable during outbox mark sent")
        await super().mark_sent(message_id, owner, now)


async def relays(
    failures: int, lease: timedelta, store_type: type[DownForAWhile] = DownForAWhile
) -> tuple[OutboxRelay, OutboxRelay, Publisher, DownForAWhile, FakeClock]:
    clock = FakeClock()
    db = MemoryDatabase()
    uow = MemoryUnitOfWorkFactory(db)
    store = store_type(db, failures)
    settings = SagaSettings(relay_lease=lease)
    publisher = Publisher()
    apply = ApplyPaymentResult(uow, clock, NullTelemetry())
    payment = SandboxPaymentGateway(clock)
    actions = ActionRunner(uow, LocalSeatInventory(), MemorySeatLock(clock), payment, apply)
    async with uow() as tx:
        await tx.outbox.put(
            [
                OutboxMessage(
                    message_id="event-1",
                    booking_id=1,
                    kind=MessageKind.EVENT,
                    name="booking_success",
                    payload={"bookingId": 1},
                    created_at=clock.now(),
                )
            ]
        )
        await tx.commit()

    def relay(owner: str) -> OutboxRelay:
        return OutboxRelay(store, publisher, actions, clock, settings, NullTelemetry(), owner)

    return relay("replica-a"), relay("replica-b"), publisher, store, clock


async def test_a_short_database_outage_after_a_publish_is_waited_out() -> None:
    """The record fails three times, then works: the event went out once and is recorded, so
    the other replica finds nothing to send after the lease."""
    first, second, publisher, store, clock = await relays(3, timedelta(seconds=30))
    assert await first.run_once() == 1
    assert store.tries == 4
    clock.advance(timedelta(minutes=5))
    assert await second.drain() == 0
    assert publisher.published == ["event-1"]


async def test_an_outage_longer_than_the_lease_gives_up_in_time() -> None:
    """A database that stays away past what the lease covers: the round fails within the lease
    (1.2 s here) instead of waiting on; the row is dispatched again after the lease."""
    first, second, publisher, store, clock = await relays(10_000, timedelta(seconds=1.2))
    with pytest.raises(DatabaseUnavailable):
        await first.run_once()
    assert 1 < store.tries < 10_000
    store.failures = 0
    clock.advance(timedelta(seconds=2))
    assert await second.drain() == 1
    assert publisher.published == ["event-1", "event-1"]


class Hangs(DownForAWhile):
    """Recording a row as sent never answers (a database behind a partition)."""

    async def mark_sent(self, message_id: str, owner: str, now: datetime) -> None:
        self.tries += 1
        await asyncio.Event().wait()


async def test_a_record_that_hangs_ends_within_the_lease() -> None:
    """A record that never answers is cut when the lease's window ends: the round fails with
    DatabaseUnavailable instead of waiting past the lease."""
    first, *_ = await relays(0, timedelta(seconds=1.2), Hangs)
    with pytest.raises(DatabaseUnavailable, match="within the lease"):
        await asyncio.wait_for(first.run_once(), timeout=5)
