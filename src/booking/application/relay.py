"""Relay the outbox: publish events and run after-commit actions, at least once, in order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import stamina

from booking.application.messages import Action
from booking.application.payments import ApplyPaymentResult
from booking.application.settings import SagaSettings
from booking.domain.booking import PaymentStatus
from booking.domain.errors import PaymentMismatch
from booking.domain.identity import Principal
from booking.ports.clock import Clock
from booking.ports.errors import (
    DatabaseUnavailable,
    PaymentUnavailable,
    PortError,
    PublishFailed,
    SeatLockUnavailable,
)
from booking.ports.outbox import JSON, EventPublisher, MessageKind, OutboxMessage, OutboxStore
from booking.ports.payment import PaymentGateway
from booking.ports.repository import UnitOfWorkFactory
from booking.ports.seat_lock import SeatLock, hold_owner
from booking.ports.telemetry import Telemetry
from booking.ports.theater import TheaterCatalog

log = logging.getLogger(__name__)

# Waits between attempts to record a dispatched row (seconds; doubling up to the maximum).
_MARK_WAIT_INITIAL = 0.05
_MARK_WAIT_MAX = 1.0


def _ints(payload: Mapping[str, JSON], key: str) -> list[int]:
    value = payload[key]
    if not isinstance(value, list):
        raise TypeError(f"{key} must be a list")
    return [int(v) for v in value if isinstance(v, int)]


def _int(payload: Mapping[str, JSON], key: str) -> int:
    value = payload[key]
    if not isinstance(value, int):
        raise TypeError(f"{key} must be an integer")
    return value


class ActionRunner:
    """Runs one after-commit action. Every action is safe to run again."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        theater: TheaterCatalog,
        seat_lock: SeatLock,
        payment: PaymentGateway,
        apply: ApplyPaymentResult,
    ) -> None:
        self._uow = uow
        self._theater = theater
        self._locks = seat_lock
        self._payment = payment
        self._apply = apply

    async def run(self, message: OutboxMessage) -> None:
        p = message.payload
        booking_id, show_id = _int(p, "bookingId"), _int(p, "showId")
        seat_ids = _ints(p, "seatIds")
        caller = Principal.system(_int(p, "userId"))
        match Action(message.name):
            case Action.THEATER_BOOK:
                await self._theater.book(show_id, seat_ids, caller)
            case Action.THEATER_LOCK_BOOK:
                await self._theater.lock(show_id, seat_ids, caller)
                await self._theater.book(show_id, seat_ids, caller)
            case Action.THEATER_RELEASE:
                await self._theater.release(show_id, seat_ids, caller)
                await self._free_claims(booking_id)
            case Action.HOLD_RELEASE:
                try:
                    await self._locks.release(show_id, seat_ids, hold_owner(booking_id))
                except SeatLockUnavailable:
                    # Holds expire by themselves; a down hold store must not block the queue.
                    log.warning("hold of booking %s left to expire", booking_id)
            case Action.PAYMENT_RECHECK:
                await self._recheck(booking_id, caller)

    async def _recheck(self, booking_id: int, caller: Principal) -> None:
        """The booking expired while the payment side could not answer. Until it answers, this
        action fails (and is retried with the relay's backoff); a definitive answer is applied
        like any other result: a payment made in time then confirms late or is flagged for
        refund instead of being dropped because nobody asked again."""
        booking = await self._uow.get(booking_id)
        if booking is None or booking.payment is None:
            return
        result = await self._payment.verify(booking.payment.session_id, caller)
        if result.status is PaymentStatus.UNKNOWN:
            raise PaymentUnavailable(f"no definitive payment answer for booking {booking_id} yet")
        if result.status is PaymentStatus.PENDING:
            return  # not paid when asked: a later payment is the customer's late payment
        try:
            await self._apply(result, booking_id=booking_id, actor="reconciler")
        except PaymentMismatch:
            return  # refused and logged by the use case

    async def _free_claims(self, booking_id: int) -> None:
        async with self._uow() as tx:
            booking = await tx.bookings.get(booking_id)
            # A late payment may have made the booking live again meanwhile.
            if booking is not None and not booking.status.is_live:
                await tx.bookings.release_claims(booking_id)
                await tx.commit()


@dataclass(slots=True)
class _Round:
    slots: asyncio.Semaphore
    lease_ends: datetime
    broker_down: bool = False


class OutboxRelay:
    """Contract: each row is dispatched until it succeeds once, in order per booking and kind;
    a row that fails waits with exponential backoff and holds back the later rows of its
    booking and kind.
    While the broker is away, events are not tried again within the same round."""

    def __init__(
        self,
        store: OutboxStore,
        publisher: EventPublisher,
        actions: ActionRunner,
        clock: Clock,
        settings: SagaSettings,
        telemetry: Telemetry,
        owner: str,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._actions = actions
        self._clock = clock
        self._settings = settings
        self._telemetry = telemetry
        self.owner = owner

    def _backoff(self, attempts: int) -> timedelta:
        delay: timedelta = self._settings.retry_base * (2 ** min(attempts, 16))
        return min(delay, self._settings.retry_max)

    async def run_once(self) -> int:
        """One round; answers how many rows were dispatched successfully.

        Streams (one booking's events, or its actions) run concurrently, bounded; the rows of
        one stream run one after the other, so publishing waits for one broker round trip per
        stream rather than per row."""
        claimed_at = self._clock.now()
        rows = await self._store.claim(
            self.owner, claimed_at, self._settings.relay_lease, self._settings.relay_batch
        )
        streams: dict[tuple[int, MessageKind], list[OutboxMessage]] = {}
        for row in rows:
            streams.setdefault((row.booking_id, row.kind), []).append(row)
        round_ = _Round(
            asyncio.Semaphore(self._settings.relay_concurrency),
            claimed_at + self._settings.relay_lease,
        )
        sent = await asyncio.gather(*(self._run_stream(s, round_) for s in streams.values()))
        return sum(sent)

    async def _run_stream(self, rows: list[OutboxMessage], round_: _Round) -> int:
        sent = 0
        for index, row in enumerate(rows):
            if round_.broker_down and row.kind is MessageKind.EVENT:
                await self._hold_back(rows[index:])
                break
            try:
                async with round_.slots:
                    budget = self._budget(round_)
                    if budget is None:
                        # The lease runs out soon: another replica may claim these rows then,
                        # and must not find this one still dispatching them. They stay leased
                        # until then and go to whoever claims them next.
                        break
                    async with asyncio.timeout(budget):
                        if row.kind is MessageKind.EVENT:
                            await self._publisher.publish(row)
                        else:
                            await self._actions.run(row)
            except (PortError, TimeoutError) as exc:
                timed_out = isinstance(exc, TimeoutError)
                round_.broker_down |= isinstance(exc, PublishFailed) or (
                    timed_out and row.kind is MessageKind.EVENT
                )
                self._telemetry.outbox_dispatched(row.kind.value, ok=False)
                error = (
                    "took too long for its lease" if timed_out else f"{type(exc).__name__}: {exc}"
                )
                log.warning("outbox %s %s failed: %s", row.kind, row.name, error)
                await self._retry(row, error, row.attempts + 1)
                await self._hold_back(rows[index + 1 :])
                break
            await self._mark_sent(row, round_)
            self._telemetry.outbox_dispatched(row.kind.value, ok=True)
            sent += 1
        return sent

    async def _mark_sent(self, row: OutboxMessage, round_: _Round) -> None:
        """Record a dispatched row as sent, waiting out a database that is away for a moment
        within the round's budget (the lease still covers the row): given up, the row is
        dispatched again by whoever claims it after the lease, and the Notification Service
        does not deduplicate events."""
        budget = self._budget(round_)
        if budget is None:
            await self._store.mark_sent(row.message_id, self.owner, self._clock.now())
            return
        try:
            # One bound for every attempt and wait: an attempt that hangs (a partition) too.
            async with asyncio.timeout(budget):
                async for attempt in stamina.retry_context(
                    on=DatabaseUnavailable,
                    attempts=None,
                    timeout=None,
                    wait_initial=_MARK_WAIT_INITIAL,
                    wait_max=_MARK_WAIT_MAX,
                    wait_jitter=_MARK_WAIT_INITIAL,
                ):
                    with attempt:
                        await self._store.mark_sent(row.message_id, self.owner, self._clock.now())
        except TimeoutError as exc:
            raise DatabaseUnavailable(
                "database unavailable during outbox mark sent (no answer within the lease)"
            ) from exc

    def _budget(self, round_: _Round) -> float | None:
        """Seconds one dispatch may take so that it ends well inside the round's lease, or
        None when too little of the lease is left to start one: a slow round (peers timing
        out, a starved process) must never still be dispatching a row another replica has
        claimed since, or the same event goes out twice."""
        lease = self._settings.relay_lease.total_seconds()
        left = (round_.lease_ends - self._clock.now()).total_seconds()
        if left < lease / 3:
            return None
        return left - lease / 6

    async def _hold_back(self, rows: list[OutboxMessage]) -> None:
        for row in rows:
            await self._retry(row, "waiting behind an earlier failure", row.attempts)

    async def _retry(self, row: OutboxMessage, error: str, attempts: int) -> None:
        available = self._clock.now() + self._backoff(max(attempts - 1, 0))
        await self._store.mark_retry(row.message_id, self.owner, error, available)

    async def drain(self, max_rounds: int = 100) -> int:
        """Run rounds until nothing is left to send now (bounded)."""
        total = 0
        for _ in range(max_rounds):
            sent = await self.run_once()
            total += sent
            if sent == 0:
                break
        return total
