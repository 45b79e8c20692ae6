"""Operator tools: outbox backlog and replay, refunds due, audit trails (HTTP and command line)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from dishka import AsyncContainer, FromDishka
from dishka.integrations.litestar import inject
from litestar import Controller, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import PathParameter, QueryParameter
from litestar.types import BeforeRequestHookHandler

from booking.application.errors import BookingNotFound
from booking.domain.identity import ADMIN
from booking.entrypoints import examples
from booking.entrypoints.api import BookingId, authenticated, booking_id_of
from booking.entrypoints.container import Role, create_container
from booking.entrypoints.logs import configure_logging
from booking.entrypoints.problems import ApiError
from booking.entrypoints.schemas import BookingView, booking_view
from booking.entrypoints.settings import Settings
from booking.entrypoints.workers import RelayNudge
from booking.ports.clock import Clock
from booking.ports.outbox import OutboxMessage, OutboxStore
from booking.ports.repository import AuditEntry, UnitOfWorkFactory

BASE = "/api/v1/admin"
ADMIN_ROLES = (ADMIN,)
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# Failed rows are looked for among this many newest undispatched rows.
FAILED_SCAN = 1000


# --- wire shapes (the command line prints the same JSON) --------------------------------------


class OutboxRowView(msgspec.Struct, rename="camel"):
    """One outbox row: an event for Kafka (`name` is the topic) or an after-commit action."""

    message_id: str
    booking_id: int
    kind: str
    name: str
    attempts: int
    last_error: str | None
    created_at: datetime | None
    sent_at: datetime | None
    payload: dict[str, Any]


class OutboxReport(msgspec.Struct, rename="camel"):
    """The backlog (rows not yet dispatched), its age, and the rows that failed at least once."""

    pending: int
    failing: int
    oldest_pending_at: datetime | None
    oldest_pending_age_seconds: float
    failed: list[OutboxRowView]


class ReplayResult(msgspec.Struct, rename="camel"):
    """The row is due again now; the relay dispatches it on its next round."""

    message_id: str
    requeued: bool


class AuditEntryView(msgspec.Struct, rename="camel"):
    """One status change of a booking: who, when, from, to, why."""

    booking_id: int
    actor: str
    at: datetime
    from_status: str | None
    to_status: str
    reason: str | None
    refund_required: bool


def _utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC) if moment is not None else None


def row_view(row: OutboxMessage) -> OutboxRowView:
    return OutboxRowView(
        message_id=row.message_id,
        booking_id=row.booking_id,
        kind=row.kind.value,
        name=row.name,
        attempts=row.attempts,
        last_error=row.last_error,
        created_at=_utc(row.created_at),
        sent_at=_utc(row.sent_at),
        payload=dict(row.payload),
    )


def audit_view(entry: AuditEntry) -> AuditEntryView:
    return AuditEntryView(
        booking_id=entry.booking_id,
        actor=entry.actor,
        at=entry.at.astimezone(UTC),
        from_status=entry.from_status.value if entry.from_status else None,
        to_status=entry.to_status.value,
        reason=entry.reason,
        refund_required=entry.refund_required,
    )


# --- the tools --------------------------------------------------------------------------------


class AdminTools:
    """What an operator may look at and do, on the ports; the HTTP API and the CLI share it.

    Contract: reads never change anything; `replay` makes one outbox row (sent or failing) due
    again now, so its event is published again with the same `eventId` (consumers see it at
    least once more) or its action runs again (actions are idempotent); False if no such row."""

    def __init__(self, uow: UnitOfWorkFactory, store: OutboxStore, clock: Clock) -> None:
        self._uow = uow
        self._store = store
        self._clock = clock

    @classmethod
    async def of(cls, container: AsyncContainer) -> AdminTools:
        return cls(
            await container.get(UnitOfWorkFactory),
            await container.get(OutboxStore),
            await container.get(Clock),
        )

    async def outbox(self, limit: int = DEFAULT_LIMIT) -> OutboxReport:
        stats = await self._store.stats()
        rows = await self._store.recent(FAILED_SCAN, pending_only=True)
        failed = [row_view(r) for r in rows if r.attempts > 0][:limit]
        oldest = stats.oldest_pending_at
        age = max((self._clock.now() - oldest).total_seconds(), 0.0) if oldest else 0.0
        return OutboxReport(stats.pending, stats.failing, _utc(oldest), round(age, 3), failed)

    async def replay(self, message_id: str) -> bool:
        return await self._store.requeue(message_id, self._clock.now())

    async def refunds(self, limit: int = DEFAULT_LIMIT) -> list[BookingView]:
        async with self._uow() as tx:
            found = await tx.bookings.refunds_required(limit)
        return [booking_view(b) for b in found]

    async def audit(self, booking_id: int) -> list[AuditEntryView]:
        """Raises BookingNotFound for an unknown booking."""
        async with self._uow() as tx:
            booking = await tx.bookings.get(booking_id)
            if booking is None:
                raise BookingNotFound(booking_id)
            trail = await tx.audit.trail(booking_id)
        return [audit_view(e) for e in trail]


# --- HTTP -------------------------------------------------------------------------------------

_ROW = {
    "messageId": "5f0c2d3e-8a1b-5c7d-9e2f-0a1b2c3d4e5f",
    "bookingId": 42,
    "kind": "event",
    "name": "booking_success",
    "attempts": 3,
    "lastError": "PublishFailed: the broker is unreachable",
    "createdAt": "2026-01-01T12:00:00Z",
    "sentAt": None,
    "payload": {"bookingId": 42, "userId": 7, "showId": 12, "totalAmount": 500.0},
}
_OUTBOX_EXAMPLE = Example(
    summary="Kafka was down for two minutes",
    value={
        "pending": 12,
        "failing": 1,
        "oldestPendingAt": "2026-01-01T12:00:00Z",
        "oldestPendingAgeSeconds": 120.5,
        "failed": [_ROW],
    },
)
_REPLAY_EXAMPLE = Example(
    summary="requeued", value={"messageId": _ROW["messageId"], "requeued": True}
)
_REFUNDS_EXAMPLE = Example(
    summary="paid after its hold, seats resold",
    value=[
        examples.BOOKING
        | {"status": "FAILED", "failureReason": "HOLD_EXPIRED", "refundRequired": True}
    ],
)
_AUDIT_EXAMPLE = Example(
    summary="created, then paid",
    value=[
        {
            "bookingId": 42,
            "actor": "user:7",
            "at": "2026-01-01T12:00:00Z",
            "fromStatus": None,
            "toStatus": "PENDING",
            "reason": None,
            "refundRequired": False,
        },
        {
            "bookingId": 42,
            "actor": "webhook",
            "at": "2026-01-01T12:01:30Z",
            "fromStatus": "PENDING",
            "toStatus": "CONFIRMED",
            "reason": None,
            "refundRequired": False,
        },
    ],
)

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="at most this many rows")]
MessageId = Annotated[
    str, PathParameter(max_length=64, description="the row's id (an event's `eventId`)")
]


class AdminController(Controller):
    """Operator endpoints; every call needs the ADMIN role (403 otherwise)."""

    path = BASE
    tags = ["admin"]  # noqa: RUF012 - Litestar's class attribute
    before_request: BeforeRequestHookHandler | None = authenticated
    opt = {"roles": ADMIN_ROLES}  # noqa: RUF012

    @get(
        "/outbox",
        summary="The outbox backlog, its age, and the rows that failed",
        responses={
            200: ResponseSpec(
                OutboxReport,
                description="Backlog and failed rows",
                examples=[_OUTBOX_EXAMPLE],
                generate_examples=False,
            ),
            **examples.problems(400, 401, 403, 503),
        },
    )
    @inject
    async def outbox(
        self,
        store: FromDishka[OutboxStore],
        uow: FromDishka[UnitOfWorkFactory],
        clock: FromDishka[Clock],
        limit: Limit = DEFAULT_LIMIT,
    ) -> OutboxReport:
        return await AdminTools(uow, store, clock).outbox(limit)

    @post(
        "/outbox/{message_id:str}/replay",
        status_code=200,
        summary="Dispatch an outbox row again (an event is re-published with its eventId)",
        responses={
            200: ResponseSpec(
                ReplayResult,
                description="Due again now",
                examples=[_REPLAY_EXAMPLE],
                generate_examples=False,
            ),
            **examples.problems(401, 403, 404, 503),
        },
    )
    @inject
    async def replay(
        self,
        message_id: MessageId,
        store: FromDishka[OutboxStore],
        uow: FromDishka[UnitOfWorkFactory],
        clock: FromDishka[Clock],
        nudge: FromDishka[RelayNudge],
    ) -> ReplayResult:
        if not await AdminTools(uow, store, clock).replay(message_id):
            raise ApiError(404, "OUTBOX_MESSAGE_NOT_FOUND", f"no outbox row {message_id}")
        nudge.set()
        return ReplayResult(message_id, True)

    @get(
        "/refunds",
        summary="Bookings paid too late to be kept: the money must go back",
        responses={
            200: ResponseSpec(
                list[BookingView],
                description="Bookings flagged for refund, oldest first",
                examples=[_REFUNDS_EXAMPLE],
                generate_examples=False,
            ),
            **examples.problems(400, 401, 403, 503),
        },
    )
    @inject
    async def refunds(
        self,
        store: FromDishka[OutboxStore],
        uow: FromDishka[UnitOfWorkFactory],
        clock: FromDishka[Clock],
        limit: Limit = DEFAULT_LIMIT,
    ) -> list[BookingView]:
        return await AdminTools(uow, store, clock).refunds(limit)

    @get(
        "/bookings/{booking_id:str}/audit",
        summary="Every status change of any booking",
        responses={
            200: ResponseSpec(
                list[AuditEntryView],
                description="The audit trail, oldest first",
                examples=[_AUDIT_EXAMPLE],
                generate_examples=False,
            ),
            **examples.problems(400, 401, 403, 404, 503),
        },
    )
    @inject
    async def audit(
        self,
        booking_id: BookingId,
        store: FromDishka[OutboxStore],
        uow: FromDishka[UnitOfWorkFactory],
        clock: FromDishka[Clock],
    ) -> list[AuditEntryView]:
        return await AdminTools(uow, store, clock).audit(booking_id_of(booking_id))


# --- the command line -------------------------------------------------------------------------


def _print(value: object) -> None:
    print(msgspec.json.encode(value).decode())


async def _run_admin(settings: Settings, args: argparse.Namespace) -> int:
    container = create_container(settings, role=Role.CLI)
    try:
        tools = await AdminTools.of(container)
        match args.admin_command:
            case "outbox":
                _print(await tools.outbox(args.limit))
            case "replay":
                if not await tools.replay(args.message_id):
                    print(f"booking admin: no outbox row {args.message_id}", file=sys.stderr)
                    return 1
                _print(ReplayResult(args.message_id, True))
            case "refunds":
                for booking in await tools.refunds(args.limit):
                    _print(booking)
            case "audit":
                try:
                    trail = await tools.audit(args.booking_id)
                except BookingNotFound:
                    print(f"booking admin: no booking {args.booking_id}", file=sys.stderr)
                    return 1
                for entry in trail:
                    _print(entry)
    finally:
        await container.close()
    return 0


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    load_settings: Callable[[], Settings],
) -> None:
    """`booking admin outbox|replay ID|refunds|audit BOOKING_ID`, printing JSON (one document
    or one line per row), the same shapes as the admin API."""
    admin = commands.add_parser("admin", help="operator tools: outbox, replay, refunds, audit")
    tools = admin.add_subparsers(dest="admin_command", required=True)
    outbox = tools.add_parser("outbox", help="backlog, its age and the failed rows")
    outbox.add_argument("--limit", type=_limit, default=DEFAULT_LIMIT)
    replay = tools.add_parser("replay", help="dispatch an outbox row again")
    replay.add_argument("message_id", metavar="ID", help="the row's id (an event's eventId)")
    refunds = tools.add_parser("refunds", help="bookings flagged for refund")
    refunds.add_argument("--limit", type=_limit, default=DEFAULT_LIMIT)
    audit = tools.add_parser("audit", help="a booking's status changes")
    audit.add_argument("booking_id", metavar="BOOKING_ID", type=_booking_id)

    def run(args: argparse.Namespace) -> int:
        settings = load_settings()
        configure_logging("WARNING")
        return asyncio.run(_run_admin(settings, args))

    admin.set_defaults(run=run)


def _limit(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_LIMIT}")
    return value


def _booking_id(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value
