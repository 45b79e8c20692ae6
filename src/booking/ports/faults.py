"""Fault points: named steps of the saga where a test may crash the process on purpose."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol


class Step(StrEnum):
    AFTER_HOLD = "after_hold"
    AFTER_INSERT = "after_insert"
    AFTER_THEATER_LOCK = "after_theater_lock"
    AFTER_CHECKOUT = "after_checkout"
    AFTER_CONFIRM_COMMIT = "after_confirm_commit"


class FaultPoints(Protocol):
    def reached(self, step: Step) -> None:
        """Called as the saga passes `step`; production wiring does nothing."""
        ...


class NoFaults:
    def reached(self, step: Step) -> None:
        return None
