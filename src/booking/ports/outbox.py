"""The transactional outbox: events and after-commit actions stored with the state change."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

JSON = str | int | float | bool | None | list["JSON"] | dict[str, "JSON"]


class MessageKind(StrEnum):
    EVENT = "event"  # published to the broker; `name` is the topic
    ACTION = "action"  # run against another service after commit; `name` says which


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One durable row. `message_id` is stable: it is the event's `eventId` on the wire."""

    message_id: str
    booking_id: int
    kind: MessageKind
    name: str
    payload: Mapping[str, JSON]
    headers: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    attempts: int = 0
    sent_at: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxStats:
    pending: int
    failing: int  # pending rows that have failed at least once
    oldest_pending_at: datetime | None


class Outbox(Protocol):
    """The writing side, inside a unit of work: rows commit or vanish with the state change."""

    async def put(self, messages: Sequence[OutboxMessage]) -> None: ...


class OutboxStore(Protocol):
    """The relaying side; each call is its own short transaction.

    Contract:
    - `claim` leases up to `limit` unsent rows whose `available_at` has come, in insertion order,
      and never a row that has an earlier unsent row of the same booking and kind (events keep
      their order per booking; actions keep theirs; a broker outage does not hold back the
      Theater release of a failed booking). A leased row is not handed to another claimer until
      the lease runs out (crash recovery).
    - `mark_sent` stores success for a row still leased by `owner`; `mark_retry` counts a failed
      attempt, records the error and makes the row available again at `available_at`.
    - `pending` lists unsent rows; `recent` the newest rows, sent or not.
    """

    async def claim(
        self, owner: str, now: datetime, lease: timedelta, limit: int
    ) -> list[OutboxMessage]: ...

    async def mark_sent(self, message_id: str, owner: str, now: datetime) -> None: ...

    async def mark_retry(
        self, message_id: str, owner: str, error: str, available_at: datetime
    ) -> None: ...

    async def requeue(self, message_id: str, now: datetime) -> bool:
        """Make a row (sent or failing) available again now; False if there is no such row."""
        ...

    async def stats(self) -> OutboxStats: ...

    async def recent(self, limit: int, *, pending_only: bool = False) -> list[OutboxMessage]: ...


class EventPublisher(Protocol):
    """Publishes one event; returns only once the broker acknowledged it (acks=all).

    Raises `PublishFailed` when it could not; the relay retries later with the same eventId."""

    async def publish(self, message: OutboxMessage) -> None: ...

    async def ping(self) -> None: ...
