"""Readiness: each dependency probed concurrently, with a timeout, never leaking its error text."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec

from booking.adapters.prometheus import PrometheusTelemetry
from booking.ports.errors import DependencyUnavailable

log = logging.getLogger(__name__)

UP, DOWN, DEGRADED = "UP", "DOWN", "DEGRADED"


@dataclass(frozen=True, slots=True)
class Probe:
    name: str
    required: bool
    ping: Callable[[], Awaitable[None]]
    kind: str = "remote"


class DependencyStatus(msgspec.Struct, rename="camel", omit_defaults=True):
    status: str
    required: bool
    kind: str
    detail: str | None = None


class Readiness(msgspec.Struct, rename="camel"):
    """UP: all answer; DEGRADED: an optional one is down; DOWN (503): a required one is."""

    status: str
    checks: dict[str, DependencyStatus]


class Liveness(msgspec.Struct):
    status: str


class HealthChecks:
    def __init__(
        self, probes: list[Probe], timeout: float, metrics: PrometheusTelemetry | None = None
    ) -> None:
        self._probes = probes
        self._timeout = timeout
        self._metrics = metrics

    async def readiness(self) -> Readiness:
        results = await asyncio.gather(*(self._check(p) for p in self._probes))
        checks = {probe.name: result for probe, result in zip(self._probes, results, strict=True)}
        down = [(p, checks[p.name]) for p in self._probes if checks[p.name].status != UP]
        if any(p.required for p, _ in down):
            status = DOWN
        elif down:
            status = DEGRADED
        else:
            status = UP
        return Readiness(status, checks)

    async def _check(self, probe: Probe) -> DependencyStatus:
        detail: str | None = None
        try:
            async with asyncio.timeout(self._timeout):
                await probe.ping()
        except TimeoutError:
            detail = "no answer in time"
        except DependencyUnavailable:
            detail = "unreachable"
        except Exception:  # a probe must never break the health endpoint
            log.exception("readiness probe %s failed", probe.name)
            detail = "probe failed"
        if self._metrics is not None:
            self._metrics.dependency(probe.name, detail is None)
        status = UP if detail is None else DOWN
        return DependencyStatus(status, probe.required, probe.kind, detail)
