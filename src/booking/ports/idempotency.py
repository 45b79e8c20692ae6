"""IdempotencyStore: one answer per Idempotency-Key (the IETF draft's rules)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: bytes
    resource_id: int | None = None


@dataclass(frozen=True, slots=True)
class Started:
    """The key is new (or its earlier attempt expired): this request owns it."""


@dataclass(frozen=True, slots=True)
class Replay:
    response: StoredResponse


@dataclass(frozen=True, slots=True)
class InFlight:
    """The same key is being processed right now (answer 409)."""


@dataclass(frozen=True, slots=True)
class KeyReused:
    """The same key came with another request body (answer 422)."""


BeginOutcome = Started | Replay | InFlight | KeyReused


class IdempotencyStore(Protocol):
    """Contract:

    - Keys are scoped by caller: two users may use the same key.
    - `begin` atomically claims a new key for `in_flight_for`; a claim older than that is
      considered abandoned and may be taken again.
    - `complete` stores the answer for `keep_for` (24 hours by default in the service).
    - `forget` drops a key whose request ended without an answer worth keeping (a 5xx).
    """

    async def begin(
        self,
        scope: str,
        key: str,
        fingerprint: str,
        now: datetime,
        in_flight_for: timedelta,
    ) -> BeginOutcome: ...

    async def complete(
        self, scope: str, key: str, response: StoredResponse, now: datetime, keep_for: timedelta
    ) -> None: ...

    async def forget(self, scope: str, key: str) -> None: ...
