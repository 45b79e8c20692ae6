"""Timing of the saga, shared by the use cases and the background jobs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class SagaSettings:
    hold_ttl: timedelta = timedelta(seconds=300)
    # After the hold expires, how long an unanswerable payment check may keep a booking PENDING.
    grace: timedelta = timedelta(seconds=60)
    # The reconciler looks at bookings whose hold expires within this margin.
    reconcile_margin: timedelta = timedelta(seconds=5)
    reconcile_lease: timedelta = timedelta(seconds=15)
    reconcile_batch: int = 100
    relay_batch: int = 100
    relay_concurrency: int = 16
    relay_lease: timedelta = timedelta(seconds=30)
    retry_base: timedelta = timedelta(seconds=1)
    retry_max: timedelta = timedelta(seconds=300)

    @property
    def seat_hold_ttl(self) -> timedelta:
        """The fast-filter hold outlives the booking's hold, so the reconciler acts first."""
        return self.hold_ttl + self.grace
