"""The one composition root: a dishka container wiring adapters to use cases from settings."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

import httpx
from dishka import AsyncContainer, Provider, Scope, make_async_container, provide
from dishka.integrations.litestar import LitestarProvider
from litestar import Request

from booking.adapters.memory.database import (
    MemoryDatabase,
    MemoryIdempotencyStore,
    MemoryOutboxStore,
    MemoryUnitOfWorkFactory,
)
from booking.adapters.memory.seat_lock import MemorySeatLock
from booking.adapters.prometheus import InstrumentedTransport, PrometheusTelemetry
from booking.adapters.sandbox.payment import SandboxPaymentGateway
from booking.adapters.sandbox.theater import LocalSeatInventory
from booking.adapters.system import SnowflakeIds, SystemClock
from booking.application.create import CreateBooking
from booking.application.payments import ApplyPaymentResult, VerifyPayment
from booking.application.queries import BookingQueries, CancelBooking
from booking.application.reconcile import Reconciler
from booking.application.relay import ActionRunner, OutboxRelay
from booking.application.settings import SagaSettings
from booking.domain.identity import Principal
from booking.entrypoints.api import CreateRoute, caller_of
from booking.entrypoints.faults import fault_points
from booking.entrypoints.health import HealthChecks, Probe
from booking.entrypoints.idempotency import Idempotency
from booking.entrypoints.identity import Authenticator
from booking.entrypoints.limits import CreationLimit
from booking.entrypoints.observability import Tracing
from booking.entrypoints.settings import Settings
from booking.entrypoints.webhook import WebhookVerifier
from booking.entrypoints.workers import RelayNudge, RetainedEventPublisher, Workers
from booking.ports.clock import Clock, IdGenerator
from booking.ports.directory import ServiceDirectory
from booking.ports.faults import FaultPoints
from booking.ports.idempotency import IdempotencyStore
from booking.ports.outbox import EventPublisher, OutboxStore
from booking.ports.payment import PaymentGateway
from booking.ports.repository import UnitOfWorkFactory
from booking.ports.seat_lock import SeatLock
from booking.ports.telemetry import Telemetry
from booking.ports.theater import TheaterCatalog

log = logging.getLogger(__name__)

PAYMENT_SERVICE = "payment-service"
THEATER_SERVICE = "theater-service"


class Role(StrEnum):
    """Which process the container serves: only the API registers itself in Eureka."""

    API = "api"
    WORKER = "worker"
    CLI = "cli"


@dataclass(frozen=True, slots=True)
class Database:
    """The three database-backed ports, always from one engine (or one memory database)."""

    uow: UnitOfWorkFactory
    outbox: OutboxStore
    idempotency: IdempotencyStore
    engine: Any = None


@dataclass(frozen=True, slots=True)
class Peers:
    """Where the Payment and Theater services are (None: the embedded stand-ins)."""

    directory: ServiceDirectory | None
    payment_url: str | None
    theater_url: str | None


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class BookingProvider(Provider):
    """APP scope: engines, clients, adapters and use cases live as long as the process."""

    scope = Scope.APP

    def __init__(self, settings: Settings, role: Role = Role.API) -> None:
        super().__init__()
        self._settings = settings
        self._role = role

    @provide
    def settings(self) -> Settings:
        return self._settings

    @provide
    def role(self) -> Role:
        return self._role

    @provide
    def saga(self, settings: Settings) -> SagaSettings:
        defaults = SagaSettings()
        grace = timedelta(seconds=settings.hold_grace_seconds)
        return SagaSettings(
            hold_ttl=timedelta(seconds=settings.hold_ttl_seconds),
            grace=grace,
            # A booking the reconciler found "not yet" is not looked at again for a lease: a
            # lease longer than the grace would keep it PENDING past hold + grace.
            reconcile_lease=min(defaults.reconcile_lease, grace),
        )

    @provide
    def clock(self) -> Clock:
        return SystemClock()

    @provide
    def ids(self) -> IdGenerator:
        return SnowflakeIds()

    @provide
    def prometheus(self) -> PrometheusTelemetry:
        return PrometheusTelemetry()

    @provide
    def telemetry(self, metrics: PrometheusTelemetry) -> Telemetry:
        return metrics

    @provide
    async def tracing(self, settings: Settings) -> AsyncIterator[Tracing]:
        tracing = Tracing.from_settings(settings)
        try:
            yield tracing
        finally:
            tracing.shutdown()  # flushes the spans still buffered

    # --- database ---------------------------------------------------------------------------

    @provide
    async def database(self, settings: Settings) -> AsyncIterator[Database]:
        if settings.uses_memory_database:
            memory = MemoryDatabase()
            yield Database(
                MemoryUnitOfWorkFactory(memory), MemoryOutboxStore(memory), MemoryIdempotencyStore()
            )
            return
        # Imported here so that the memory and sandbox setup needs no SQL driver at all.
        from booking.adapters.sql import (
            SqlIdempotencyStore,
            SqlOutboxStore,
            SqlUnitOfWorkFactory,
            create_engine,
        )

        engine = create_engine(
            settings.resolved_database_url,
            pool_size=settings.database_pool_size,
            # A fixed pool: overflow connections are closed on return, so under steady load
            # they are opened and closed over and over (a connect per request, at both ends).
            max_overflow=0,
        )
        try:
            yield Database(
                SqlUnitOfWorkFactory(engine),
                SqlOutboxStore(engine),
                SqlIdempotencyStore(engine),
                engine,
            )
        finally:
            await engine.dispose()

    @provide
    def uow(self, database: Database) -> UnitOfWorkFactory:
        return database.uow

    @provide
    def outbox_store(self, database: Database) -> OutboxStore:
        return database.outbox

    @provide
    def idempotency(self, database: Database) -> IdempotencyStore:
        return database.idempotency

    # --- seat holds -------------------------------------------------------------------------

    @provide
    async def seat_lock(self, settings: Settings, clock: Clock) -> AsyncIterator[SeatLock]:
        if settings.redis_url is None:
            yield MemorySeatLock(clock)
            return
        from booking.adapters.redis.seat_lock import RedisSeatLock, create_redis_client

        client = create_redis_client(settings.redis_url)
        try:
            yield RedisSeatLock(client)
        finally:
            await client.aclose()

    # --- peers ------------------------------------------------------------------------------

    @provide
    async def peers(self, settings: Settings, role: Role) -> AsyncIterator[Peers]:
        if settings.eureka_url is None:
            yield Peers(None, settings.payment_service_url, settings.theater_service_url)
            return
        from booking.adapters.http.eureka import EurekaInstance, EurekaServiceDirectory

        instance = None
        if role is Role.API:
            host = settings.instance_host or socket.gethostname()
            instance = EurekaInstance(
                port=settings.port,
                host=host,
                health_path="/health/ready",
                status_path="/health/live",
            )
        directory = EurekaServiceDirectory(
            settings.eureka_url, instance, timeout=settings.http_timeout_seconds
        )
        try:
            # An explicit URL still wins over the registry for that peer.
            yield Peers(directory, settings.payment_service_url, settings.theater_service_url)
        finally:
            await directory.close()

    @provide
    async def theater(
        self, settings: Settings, peers: Peers, metrics: PrometheusTelemetry, tracing: Tracing
    ) -> AsyncIterator[TheaterCatalog]:
        if peers.theater_url is None and peers.directory is None:
            inventory = LocalSeatInventory()
            inventory.seed_demo()
            yield inventory
            return
        from booking.adapters.http.theater import HttpTheaterCatalog

        async with _peer_client("theater", metrics, tracing) as client:
            yield HttpTheaterCatalog(
                base_url=peers.theater_url,
                directory=None if peers.theater_url else peers.directory,
                service=THEATER_SERVICE,
                client=client,
                timeout=settings.http_timeout_seconds,
                service_role=settings.service_role,
            )

    @provide
    async def payment(
        self,
        settings: Settings,
        peers: Peers,
        clock: Clock,
        metrics: PrometheusTelemetry,
        tracing: Tracing,
    ) -> AsyncIterator[PaymentGateway]:
        if peers.payment_url is None and peers.directory is None:
            yield SandboxPaymentGateway(clock, settings.resolved_base_url)
            return
        from booking.adapters.http.payment import HttpPaymentGateway

        async with _peer_client("payment", metrics, tracing) as client:
            yield HttpPaymentGateway(
                base_url=peers.payment_url,
                directory=None if peers.payment_url else peers.directory,
                service=PAYMENT_SERVICE,
                client=client,
                timeout=settings.http_timeout_seconds,
                service_role=settings.service_role,
            )

    # --- events -----------------------------------------------------------------------------

    @provide
    async def publisher(self, settings: Settings) -> AsyncIterator[EventPublisher]:
        if settings.kafka_bootstrap_servers is None:
            yield RetainedEventPublisher()
            return
        from booking.adapters.kafka.publisher import KafkaEventPublisher

        producer = KafkaEventPublisher(
            settings.kafka_bootstrap_servers,
            enable_idempotence=settings.kafka_enable_idempotence,
        )
        try:
            yield producer
        finally:
            await producer.close()

    # --- use cases --------------------------------------------------------------------------

    @provide
    def queries(self, uow: UnitOfWorkFactory) -> BookingQueries:
        return BookingQueries(uow)

    @provide
    def faults(self) -> FaultPoints:
        """No faults, unless a crash test names a saga step in BOOKING_FAULT_CRASH_AT."""
        return fault_points()

    @provide
    def create_booking(
        self,
        uow: UnitOfWorkFactory,
        seat_lock: SeatLock,
        theater: TheaterCatalog,
        payment: PaymentGateway,
        clock: Clock,
        ids: IdGenerator,
        saga: SagaSettings,
        telemetry: Telemetry,
        faults: FaultPoints,
    ) -> CreateBooking:
        return CreateBooking(
            uow, seat_lock, theater, payment, clock, ids, saga, telemetry, faults=faults
        )

    @provide
    def apply_payment(
        self, uow: UnitOfWorkFactory, clock: Clock, telemetry: Telemetry, faults: FaultPoints
    ) -> ApplyPaymentResult:
        return ApplyPaymentResult(uow, clock, telemetry, faults=faults)

    @provide
    def verify_payment(
        self, queries: BookingQueries, payment: PaymentGateway, apply: ApplyPaymentResult
    ) -> VerifyPayment:
        return VerifyPayment(queries, payment, apply)

    @provide
    def cancel_booking(
        self,
        queries: BookingQueries,
        uow: UnitOfWorkFactory,
        clock: Clock,
        telemetry: Telemetry,
    ) -> CancelBooking:
        return CancelBooking(queries, uow, clock, telemetry)

    @provide
    def reconciler(
        self,
        uow: UnitOfWorkFactory,
        payment: PaymentGateway,
        apply: ApplyPaymentResult,
        clock: Clock,
        saga: SagaSettings,
        telemetry: Telemetry,
    ) -> Reconciler:
        return Reconciler(uow, payment, apply, clock, saga, telemetry)

    @provide
    def action_runner(
        self,
        uow: UnitOfWorkFactory,
        theater: TheaterCatalog,
        seat_lock: SeatLock,
        payment: PaymentGateway,
        apply: ApplyPaymentResult,
    ) -> ActionRunner:
        return ActionRunner(uow, theater, seat_lock, payment, apply)

    @provide
    def relay(
        self,
        store: OutboxStore,
        publisher: EventPublisher,
        actions: ActionRunner,
        clock: Clock,
        saga: SagaSettings,
        telemetry: Telemetry,
    ) -> OutboxRelay:
        return OutboxRelay(store, publisher, actions, clock, saga, telemetry, instance_name())

    # --- the HTTP edge and the runtime ------------------------------------------------------

    @provide
    def authenticator(self, settings: Settings) -> Authenticator:
        return Authenticator.from_settings(settings)

    @provide
    def creation_limit(self, settings: Settings) -> CreationLimit:
        return CreationLimit.of(settings.create_limit_per_minute, settings.create_limit_burst)

    @provide(scope=Scope.REQUEST)
    def principal(self, request: Request, auth: Authenticator) -> Principal:  # type: ignore[type-arg]
        """The caller of this request; resolving it raises 401 without an identity."""
        return caller_of(request, auth)

    @provide
    def webhook(
        self, settings: Settings, clock: Clock, idempotency: IdempotencyStore
    ) -> WebhookVerifier:
        return WebhookVerifier(
            settings.webhook_secret.encode() if settings.webhook_secret else None,
            timedelta(seconds=settings.webhook_tolerance_seconds),
            clock,
            idempotency,
        )

    @provide
    def idempotent_create(
        self, settings: Settings, clock: Clock, store: IdempotencyStore
    ) -> Idempotency:
        return Idempotency(store, clock, timedelta(seconds=settings.idempotency_ttl_seconds))

    @provide
    def create_route(
        self,
        create: CreateBooking,
        idempotency: Idempotency,
        nudge: RelayNudge,
        limit: CreationLimit,
    ) -> CreateRoute:
        return CreateRoute(create, idempotency, nudge, limit)

    @provide
    def nudge(self) -> RelayNudge:
        return RelayNudge()

    @provide
    def health(
        self,
        settings: Settings,
        uow: UnitOfWorkFactory,
        seat_lock: SeatLock,
        publisher: EventPublisher,
        payment: PaymentGateway,
        theater: TheaterCatalog,
        metrics: PrometheusTelemetry,
    ) -> HealthChecks:
        required = set(settings.readiness_required)
        probes = [
            Probe("database", "database" in required, uow.ping, _database_kind(settings)),
            Probe("redis", "redis" in required, seat_lock.ping, _kind(seat_lock, "redis")),
            Probe("kafka", "kafka" in required, publisher.ping, _kind(publisher, "kafka")),
            Probe("payment", "payment" in required, payment.ping, _kind(payment, "http")),
            Probe("theater", "theater" in required, theater.ping, _kind(theater, "http")),
        ]
        return HealthChecks(probes, settings.health_timeout_seconds, metrics)

    @provide
    def workers(
        self,
        settings: Settings,
        relay: OutboxRelay,
        reconciler: Reconciler,
        store: OutboxStore,
        apply: ApplyPaymentResult,
        clock: Clock,
        metrics: PrometheusTelemetry,
        nudge: RelayNudge,
    ) -> Workers:
        return Workers(
            relay=relay,
            reconciler=reconciler,
            store=store,
            apply=apply,
            clock=clock,
            metrics=metrics,
            nudge=nudge,
            relay_interval=settings.relay_interval_seconds,
            reconcile_interval=settings.reconcile_interval_seconds,
            kafka_bootstrap=settings.kafka_bootstrap_servers,
            payment_results_topic=settings.payment_results_topic,
        )


def _database_kind(settings: Settings) -> str:
    url = settings.resolved_database_url
    return "embedded" if url.startswith(("memory", "sqlite")) else "postgresql"


def _kind(adapter: object, remote: str) -> str:
    """`remote` for a real adapter; `embedded` for the in-process stand-ins."""
    embedded = (
        MemorySeatLock,
        RetainedEventPublisher,
        SandboxPaymentGateway,
        LocalSeatInventory,
    )
    return "embedded" if isinstance(adapter, embedded) else remote


def _peer_client(peer: str, metrics: PrometheusTelemetry, tracing: Tracing) -> httpx.AsyncClient:
    """An httpx client for one peer, with metrics (and spans) on every attempt; the providers
    close it with the container (`async with`)."""
    from booking.adapters.http.transport import peer_client, peer_transport

    return peer_client(
        tracing.transport(peer, InstrumentedTransport(peer, metrics, inner=peer_transport()))
    )


def instances(values: Mapping[Any, object]) -> Provider:
    """A provider of ready-made objects keyed by the type they stand for; passed as an
    override, it replaces the container's own (tests inject memory adapters, a FakeClock)."""
    provider = Provider(scope=Scope.APP)
    for key, value in values.items():
        provider.provide(_constant(value), provides=key)
    return provider


def _constant(value: object) -> Any:
    def factory() -> object:
        return value

    return factory


def create_container(
    settings: Settings, *overrides: Provider, role: Role = Role.API
) -> AsyncContainer:
    """The container of one process; later providers override earlier ones."""
    return make_async_container(BookingProvider(settings, role), LitestarProvider(), *overrides)
