"""The app factory on memory adapters and a fake clock, driven through Litestar's test client."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from booking.adapters.memory.clock import FakeClock, SequenceIds
from booking.adapters.memory.database import (
    MemoryDatabase,
    MemoryIdempotencyStore,
    MemoryOutboxStore,
    MemoryUnitOfWorkFactory,
)
from booking.adapters.memory.publisher import MemoryEventPublisher
from booking.adapters.memory.seat_lock import MemorySeatLock
from booking.adapters.sandbox.payment import SandboxPaymentGateway
from booking.adapters.sandbox.theater import LocalSeatInventory
from booking.application.reconcile import Reconciler
from booking.application.relay import OutboxRelay
from booking.domain.booking import Booking, PaymentStatus
from booking.entrypoints.app import create_app
from booking.entrypoints.container import create_container, instances
from booking.entrypoints.identity import mint_token
from booking.entrypoints.settings import AuthMode, Settings
from booking.entrypoints.webhook import signature_header
from booking.ports.clock import Clock, IdGenerator
from booking.ports.idempotency import IdempotencyStore
from booking.ports.outbox import EventPublisher, OutboxStore
from booking.ports.payment import PaymentGateway
from booking.ports.repository import UnitOfWorkFactory
from booking.ports.seat_lock import SeatLock
from booking.ports.theater import TheaterCatalog

SECRET = base64.b64encode(b"k" * 64).decode()
WEBHOOK_SECRET = "whsec_test_secret"
SHOW = 1
BASE = "/api/v1/bookings"


@dataclass
class World:
    """Everything behind the app, for arranging and checking what happened."""

    clock: FakeClock = field(default_factory=FakeClock)
    db: MemoryDatabase = field(default_factory=MemoryDatabase)
    theater: LocalSeatInventory = field(default_factory=LocalSeatInventory)
    publisher: MemoryEventPublisher = field(default_factory=MemoryEventPublisher)
    idempotency: MemoryIdempotencyStore = field(default_factory=MemoryIdempotencyStore)

    def __post_init__(self) -> None:
        self.theater.seed_demo(SHOW)
        self.locks = MemorySeatLock(self.clock)
        self.payment = SandboxPaymentGateway(self.clock, "http://testserver.local")
        self.uow = MemoryUnitOfWorkFactory(self.db)
        self.store = MemoryOutboxStore(self.db)

    def overrides(self) -> dict[Any, object]:
        return {
            Clock: self.clock,
            IdGenerator: SequenceIds(1000),
            UnitOfWorkFactory: self.uow,
            OutboxStore: self.store,
            IdempotencyStore: self.idempotency,
            SeatLock: self.locks,
            TheaterCatalog: self.theater,
            PaymentGateway: self.payment,
            EventPublisher: self.publisher,
        }

    def booking(self, booking_id: int) -> Booking:
        return self.db.state.bookings[booking_id]


def settings_for(mode: AuthMode = AuthMode.JWT, **changes: Any) -> Settings:
    base = Settings(
        database_url="memory://",
        auth_mode=mode,
        jwt_secret=SECRET,
        webhook_secret=WEBHOOK_SECRET,
        run_workers=False,
        base_url="http://testserver.local",
        max_body_bytes=2048,
    )
    return base.with_overrides(**changes)


def token(user_id: int = 7, roles: tuple[str, ...] = ("ROLE_USER",), **kwargs: Any) -> str:
    return mint_token(SECRET, user_id, roles, **kwargs)


def auth(user_id: int = 7, roles: tuple[str, ...] = ("ROLE_USER",)) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user_id, roles)}"}


@dataclass
class Api:
    client: httpx.AsyncClient
    world: World
    container: Any
    app: Any

    async def create(
        self, seat_ids: list[int], user_id: int = 7, show_id: int = SHOW, **headers: str
    ) -> Any:
        return await self.client.post(
            BASE,
            json={"showId": show_id, "seatIds": seat_ids},
            headers=auth(user_id) | headers,
        )

    async def booked(self, seat_ids: list[int], user_id: int = 7) -> dict[str, Any]:
        response = await self.create(seat_ids, user_id)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def relay(self) -> int:
        relay = await self.container.get(OutboxRelay)
        sent: int = await relay.drain()
        return sent

    async def reconcile(self) -> None:
        reconciler = await self.container.get(Reconciler)
        await reconciler.run_once()

    def settle(self, session_id: str, status: PaymentStatus) -> None:
        self.world.payment.settle(session_id, status)

    def webhook_headers(self, body: bytes, at: datetime | None = None) -> dict[str, str]:
        header = signature_header(WEBHOOK_SECRET.encode(), body, at or self.world.clock.now())
        return {"Booking-Signature": header, "Content-Type": "application/json"}


ApiFactory = Callable[..., Awaitable[Api]]


@contextlib.asynccontextmanager
async def running(app: Any) -> AsyncIterator[None]:
    """Runs the ASGI lifespan protocol in one task of its own, as a server does."""
    inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def receive() -> dict[str, str]:
        return await inbox.get()

    async def send(message: dict[str, Any]) -> None:
        await outbox.put(message)

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    await inbox.put({"type": "lifespan.startup"})
    started = await asyncio.wait_for(outbox.get(), 10)
    assert started["type"] == "lifespan.startup.complete", started
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        stopped = await asyncio.wait_for(outbox.get(), 10)
        assert stopped["type"] == "lifespan.shutdown.complete", stopped
        await asyncio.wait_for(task, 10)


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
async def make_api(world: World) -> AsyncIterator[ApiFactory]:
    """Builds an app for given settings, started in this event loop (lifespan included) and
    driven over httpx's ASGI transport; every app is shut down at the end."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(settings: Settings | None = None) -> Api:
            chosen = settings or settings_for()
            container = create_container(chosen, instances(world.overrides()))
            app = create_app(chosen, container)
            await stack.enter_async_context(running(app))
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver.local"
            )
            await stack.enter_async_context(client)
            return Api(client, world, container, app)

        yield make


@pytest.fixture
async def api(make_api: ApiFactory) -> Api:
    return await make_api()


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """Asserts an RFC 9457 answer with our members, and that it leaks nothing."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    for member in ("type", "title", "status", "detail", "instance", "timestamp", "errorCode"):
        assert member in body, member
    assert body["status"] == status
    assert body["errorCode"] == code, body
    text = response.text.lower()
    for leak in ("traceback", "msgspec", "litestar", "sqlalchemy", "expected `", 'file "'):
        assert leak not in text, response.text
    return body


HOLD = timedelta(seconds=300)
