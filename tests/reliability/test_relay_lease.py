"""A relay round slower than its lease never dispatches a row another replica claimed since.

Found by the outage scenarios: with peers timing out, one replica's round outlived its 30 s
lease, the other replica claimed the same rows, and both published the same events."""

from __future__ import annotations

import asyncio
from datetime import timedelta

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
from booking.ports.outbox import MessageKind, OutboxMessage
from booking.ports.telemetry import NullTelemetry

LEASE = timedelta(seconds=30)
SLOW = timedelta(seconds=12)


class SlowPublisher:
    """Each publish takes 12 s of the fake clock and lets other tasks run meanwhile."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.published: list[str] = []

    async def publish(self, message: OutboxMessage) -> None:
        self.clock.advance(SLOW)
        for _ in range(3):
            await asyncio.sleep(0)
        self.published.append(message.message_id)

    async def ping(self) -> None:
        return None


async def test_a_round_outliving_its_lease_stops_before_another_replica_claims() -> None:
    """Ten events, one replica publishing slowly: it stops while its lease still covers it;
    the other replica sends the rest after the lease; every event goes out exactly once."""
    clock = FakeClock()
    db = MemoryDatabase()
    uow = MemoryUnitOfWorkFactory(db)
    store = MemoryOutboxStore(db)
    settings = SagaSettings(relay_lease=LEASE, relay_concurrency=1)
    publisher = SlowPublisher(clock)
    payment = SandboxPaymentGateway(clock)
    apply = ApplyPaymentResult(uow, clock, NullTelemetry())
    actions = ActionRunner(uow, LocalSeatInventory(), MemorySeatLock(clock), payment, apply)

    def relay(owner: str) -> OutboxRelay:
        return OutboxRelay(store, publisher, actions, clock, settings, NullTelemetry(), owner)

    messages = [
        OutboxMessage(
            message_id=f"event-{n}",
            booking_id=n,
            kind=MessageKind.EVENT,
            name="booking_success",
            payload={"bookingId": n},
            created_at=clock.now(),
        )
        for n in range(1, 11)
    ]
    async with uow() as tx:
        await tx.outbox.put(messages)
        await tx.commit()

    first, second = relay("replica-a"), relay("replica-b")
    done = asyncio.Event()

    async def other_replica() -> None:
        # Claims whenever it gets the chance, as a second replica's relay loop does.
        while not done.is_set():
            await second.run_once()
            await asyncio.sleep(0)

    polling = asyncio.create_task(other_replica())
    await first.run_once()
    done.set()
    await polling
    for _ in range(len(messages)):
        clock.advance(LEASE)
        await second.drain()
        await first.drain()

    assert sorted(publisher.published) == sorted(m.message_id for m in messages)
    assert len(publisher.published) == len(set(publisher.published))
