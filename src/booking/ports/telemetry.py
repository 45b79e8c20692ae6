"""Telemetry: what the use cases report for metrics, without knowing the metrics library."""

from __future__ import annotations

from typing import Protocol


class Telemetry(Protocol):
    def booking_outcome(self, outcome: str, reason: str | None = None) -> None:
        """A create or a payment ended: outcome in created/confirmed/failed/cancelled/rejected."""
        ...

    def hold_conflict(self) -> None: ...

    def hold_store_degraded(self, degraded: bool) -> None: ...

    def reconciler_action(self, action: str) -> None: ...

    def outbox_dispatched(self, kind: str, ok: bool) -> None: ...


class NullTelemetry:
    def booking_outcome(self, outcome: str, reason: str | None = None) -> None:
        return None

    def hold_conflict(self) -> None:
        return None

    def hold_store_degraded(self, degraded: bool) -> None:
        return None

    def reconciler_action(self, action: str) -> None:
        return None

    def outbox_dispatched(self, kind: str, ok: bool) -> None:
        return None
