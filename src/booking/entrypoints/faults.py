"""Test-only crash points: `BOOKING_FAULT_CRASH_AT=<step>` SIGKILLs the process at that step."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping

from booking.ports.faults import FaultPoints, NoFaults, Step

log = logging.getLogger(__name__)

CRASH_AT = "BOOKING_FAULT_CRASH_AT"
# Pass this many arrivals at the step before crashing (default 0: the first arrival crashes).
CRASH_SKIP = "BOOKING_FAULT_CRASH_SKIP"


def _kill_self() -> None:
    # SIGKILL, not an exception: no `finally`, no compensation, no graceful shutdown — exactly
    # what a power cut or the OOM killer does to a replica in the middle of a saga.
    os.kill(os.getpid(), signal.SIGKILL)


class CrashAtStep:
    """FaultPoints that kill the process when the saga passes `step` (after `skip` passes).

    Contract: every other step does nothing; the kill is immediate (SIGKILL), so no code of the
    request after the step runs. `kill` is injectable for tests of this class itself."""

    def __init__(self, step: Step, skip: int = 0, kill: Callable[[], None] = _kill_self) -> None:
        self.step = step
        self._remaining = skip
        self._kill = kill

    def reached(self, step: Step) -> None:
        if step is not self.step:
            return
        if self._remaining > 0:
            self._remaining -= 1
            return
        # Written straight to stderr: the logging handler may buffer, and the kill is next.
        print(f"booking: fault injected, crashing at {step}", file=sys.stderr, flush=True)
        self._kill()


def fault_points(environ: Mapping[str, str] | None = None) -> FaultPoints:
    """The fault points selected by the environment: none unless BOOKING_FAULT_CRASH_AT names a
    step. An unknown step name is a configuration error (a typo must not silently test nothing).
    """
    env = os.environ if environ is None else environ
    name = env.get(CRASH_AT, "").strip().lower()
    if not name:
        return NoFaults()
    try:
        step = Step(name)
    except ValueError:
        known = ", ".join(s.value for s in Step)
        raise ValueError(f"{CRASH_AT}={name!r} is not a saga step ({known})") from None
    raw_skip = env.get(CRASH_SKIP, "0").strip() or "0"
    if not raw_skip.isdigit():
        raise ValueError(f"{CRASH_SKIP} must be a non-negative integer")
    log.warning("fault injection armed: the process will be killed at %s", step)
    return CrashAtStep(step, int(raw_skip))
