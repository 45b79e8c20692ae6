"""The in-memory harness: every use case wired to memory and sandbox adapters and a fake clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from booking.adapters.memory.clock import FakeClock, SequenceIds
from booking.adapters.memory.database import (
    MemoryDatabase,
    MemoryOutboxStore,
    MemoryUnitOfWorkFactory,
)
from booking.adapters.memory.publisher import MemoryEventPublisher
from booking.adapters.memory.seat_lock import MemorySeatLock
from booking.adapters.sandbox.payment import SandboxPaymentGateway
from booking.adapters.sandbox.theater import LocalSeatInventory
from booking.application.create import CreateBooking
from booking.application.payments import ApplyPaymentResult, VerifyPayment
from booking.application.queries import BookingQueries, CancelBooking
from booking.application.reconcile import Reconciler
from booking.application.relay import ActionRunner, OutboxRelay
from booking.application.settings import SagaSettings
from booking.domain.booking import Booking, SeatType
from booking.domain.identity import Principal
from booking.domain.money import Money
from booking.ports.repository import UnitOfWorkFactory
from booking.ports.telemetry import NullTelemetry
from booking.ports.theater import SeatInfo

SHOW_ID = 7


def small_hall(seat_count: int, first_id: int = 101) -> list[SeatInfo]:
    return [
        SeatInfo(first_id + i, f"1-{i + 1}", SeatType.GOLD, Money(250_00 + 100 * i))
        for i in range(seat_count)
    ]


@dataclass
class Harness:
    settings: SagaSettings = field(
        default_factory=lambda: SagaSettings(
            hold_ttl=timedelta(minutes=5),
            grace=timedelta(minutes=1),
            retry_base=timedelta(seconds=1),
            retry_max=timedelta(seconds=8),
        )
    )
    clock: FakeClock = field(default_factory=FakeClock)
    db: MemoryDatabase = field(default_factory=MemoryDatabase)
    publisher: MemoryEventPublisher = field(default_factory=MemoryEventPublisher)
    theater: LocalSeatInventory = field(default_factory=LocalSeatInventory)
    # Another database for the same use cases (the memory one by default).
    uow_factory: UnitOfWorkFactory | None = None

    def __post_init__(self) -> None:
        telemetry = NullTelemetry()
        self.uow = self.uow_factory or MemoryUnitOfWorkFactory(self.db)
        self.locks = MemorySeatLock(self.clock)
        self.payment = SandboxPaymentGateway(self.clock)
        self.store = MemoryOutboxStore(self.db)
        self.create = CreateBooking(
            self.uow,
            self.locks,
            self.theater,
            self.payment,
            self.clock,
            SequenceIds(),
            self.settings,
            telemetry,
        )
        self.queries = BookingQueries(self.uow)
        self.apply = ApplyPaymentResult(self.uow, self.clock, telemetry)
        self.verify = VerifyPayment(self.queries, self.payment, self.apply)
        self.cancel = CancelBooking(self.queries, self.uow, self.clock, telemetry)
        self.reconciler = Reconciler(
            self.uow, self.payment, self.apply, self.clock, self.settings, telemetry
        )
        self.actions = ActionRunner(self.uow, self.theater, self.locks, self.payment, self.apply)
        self.relay = OutboxRelay(
            self.store,
            self.publisher,
            self.actions,
            self.clock,
            self.settings,
            telemetry,
            owner="relay-1",
        )

    @staticmethod
    def user(user_id: int) -> Principal:
        return Principal.of(user_id, f"{user_id}_user", ["ROLE_USER"])

    def bookings(self) -> list[Booking]:
        return list(self.db.state.bookings.values())

    def booking(self, booking_id: int) -> Booking:
        return self.db.state.bookings[booking_id]
