"""Time and ids come through ports, so expiry is tested without sleeping."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class IdGenerator(Protocol):
    def next_id(self) -> int:
        """A new positive 64-bit booking id, unique across replicas with overwhelming odds.

        A collision is still caught by the repository (`DuplicateBookingId`)."""
        ...
