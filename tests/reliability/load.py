"""Simulated customers racing for a small hall: every request and answer is recorded.

Each customer tries to book 1-3 random seats (other seats after a conflict, the same request
again with the same Idempotency-Key after a 503 or a lost answer), then pays, pays late,
declines, cancels or walks away, and polls verify-payment as a checkout page does.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.reliability.stack import BASE, Replica, Timing, gateway_headers

FATES = {"pay": 45, "pay_late": 8, "decline": 12, "cancel": 10, "abandon": 25}
_CREATE_TRIES = 3
_SAME_KEY_TRIES = 4
_MAX_WAIT = 2.0


@dataclass(slots=True)
class Exchange:
    """One request to the service and what came back (`status` None: no answer at all)."""

    user: int
    replica: str
    method: str
    path: str
    status: int | None
    error: str | None
    retry_after: str | None
    body: Any
    started: float
    ended: float

    @property
    def code(self) -> str | None:
        if isinstance(self.body, dict):
            value = self.body.get("errorCode")
            return value if isinstance(value, str) else None
        return None


@dataclass
class History:
    exchanges: list[Exchange] = field(default_factory=list)
    # booking id -> what its customer decided, and what the customer was last told.
    fates: dict[int, str] = field(default_factory=dict)
    told: dict[int, str] = field(default_factory=dict)
    payments: int = 0
    started: float = field(default_factory=time.monotonic)

    def of(self, status: int) -> list[Exchange]:
        return [e for e in self.exchanges if e.status == status]


@dataclass(frozen=True, slots=True)
class Plan:
    show_id: int
    seats: Sequence[int]
    users: int = 200
    spread: float = 15.0  # customers arrive uniformly over this many seconds
    first_user: int = 10_000
    seed: int = 1
    fates: dict[str, int] = field(default_factory=lambda: dict(FATES))


class Load:
    """Runs a plan against replicas; `history` holds everything seen."""

    def __init__(
        self, plan: Plan, replicas: Sequence[Replica], payment_url: str, timing: Timing
    ) -> None:
        self.plan = plan
        self.replicas = list(replicas)
        self.payment_url = payment_url
        self.timing = timing
        self.history = History()
        self._rng = random.Random(plan.seed)  # noqa: S311 - a reproducible workload
        self._clients: dict[str, httpx.AsyncClient] = {}

    async def run(self) -> History:
        limits = httpx.Limits(max_connections=300, max_keepalive_connections=100)
        async with (
            httpx.AsyncClient(timeout=30.0, limits=limits) as payment,
            contextlib_clients(self.replicas, limits) as clients,
        ):
            self._clients = clients
            self._payment = payment
            users = range(self.plan.first_user, self.plan.first_user + self.plan.users)
            plans = [
                (user, self._rng.uniform(0, self.plan.spread), random.Random(user))  # noqa: S311
                for user in users
            ]
            await asyncio.gather(*(self._customer(u, at, rng) for u, at, rng in plans))
        return self.history

    # --- one customer -------------------------------------------------------------------------

    async def _customer(self, user: int, arrival: float, rng: random.Random) -> None:
        await asyncio.sleep(arrival)
        headers = gateway_headers(user)
        booking = await self._book(user, headers, rng)
        if booking is None:
            return
        booking_id = int(booking["bookingId"])
        session = str(booking["paymentSessionId"])
        fate = rng.choices(list(self.plan.fates), weights=list(self.plan.fates.values()))[0]
        self.history.fates[booking_id] = fate
        self.history.told[booking_id] = str(booking["status"])
        if fate == "pay":
            await asyncio.sleep(rng.uniform(0, self.timing.hold_ttl / 2))
            await self._pay(session, "pay")
            await self._poll(user, headers, booking_id, session, rng)
        elif fate == "pay_late":
            await asyncio.sleep(self.timing.hold_ttl + rng.uniform(0.5, self.timing.grace))
            await self._pay(session, "pay")
            await self._poll(user, headers, booking_id, session, rng)
        elif fate == "decline":
            await asyncio.sleep(rng.uniform(0, 1))
            await self._pay(session, "decline")
            await self._poll(user, headers, booking_id, session, rng, rounds=1)
        elif fate == "cancel":
            await asyncio.sleep(rng.uniform(0, 1))
            answer = await self._call(user, "POST", f"{BASE}/{booking_id}/cancel", headers, rng)
            self._tell(booking_id, answer)
        else:
            answer = await self._call(user, "GET", f"{BASE}/{booking_id}", headers, rng)
            self._tell(booking_id, answer)

    async def _book(
        self, user: int, headers: dict[str, str], rng: random.Random
    ) -> dict[str, Any] | None:
        for _ in range(_CREATE_TRIES):
            count = rng.choice((1, 1, 2, 2, 3))
            seats = sorted(rng.sample(list(self.plan.seats), count))
            body = {"showId": self.plan.show_id, "seatIds": seats}
            key = {"Idempotency-Key": f"rel-{uuid.uuid4()}"} if rng.random() < 0.7 else {}
            for _ in range(_SAME_KEY_TRIES):
                answer = await self._call(user, "POST", BASE, headers | key, rng, json=body)
                if answer.status == 201:
                    created: dict[str, Any] = answer.body
                    return created
                if answer.status in (None, 429, 503) or answer.code == "IDEMPOTENCY_KEY_IN_USE":
                    await asyncio.sleep(_wait(answer, rng))
                    if not key and answer.status is None:
                        break  # no key: a lost answer may have booked; do not book twice
                    continue
                break  # seats taken (409) or refused: choose other seats
        return None

    async def _poll(
        self,
        user: int,
        headers: dict[str, str],
        booking_id: int,
        session: str,
        rng: random.Random,
        rounds: int = 8,
    ) -> None:
        path = f"{BASE}/{booking_id}/verify-payment"
        for _ in range(rounds):
            answer = await self._call(
                user, "GET", path, headers, rng, params={"sessionId": session}
            )
            self._tell(booking_id, answer)
            if answer.status == 402:
                return
            if answer.status == 200 and answer.body.get("status") != "PENDING":
                return
            await asyncio.sleep(_wait(answer, rng, 0.7))

    async def _pay(self, session: str, action: str) -> None:
        """The customer on the Payment Service's checkout page (not through the service)."""
        try:
            await self._payment.post(f"{self.payment_url}/checkout/{session}/{action}")
        except httpx.HTTPError:
            return
        if action == "pay":
            self.history.payments += 1

    def _tell(self, booking_id: int, answer: Exchange) -> None:
        if answer.status == 200 and isinstance(answer.body, dict) and "status" in answer.body:
            self.history.told[booking_id] = str(answer.body["status"])
        elif answer.status == 402:
            self.history.told[booking_id] = "FAILED"

    async def _call(
        self,
        user: int,
        method: str,
        path: str,
        headers: dict[str, str],
        rng: random.Random,
        **kwargs: Any,
    ) -> Exchange:
        """One request to a random replica; a replica that does not answer is tried no more
        for this request (the next one from another replica, as a load balancer would)."""
        replica = rng.choice(self.replicas)
        client = self._clients[replica.name]
        started = time.monotonic()
        try:
            response = await client.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            exchange = Exchange(
                user, replica.name, method, path, None, type(exc).__name__, None, None,
                started, time.monotonic(),
            )  # fmt: skip
        else:
            try:
                body = response.json() if response.content else None
            except ValueError:
                body = response.text
            exchange = Exchange(
                user, replica.name, method, path, response.status_code, None,
                response.headers.get("retry-after"), body, started, time.monotonic(),
            )  # fmt: skip
        self.history.exchanges.append(exchange)
        return exchange


def _wait(answer: Exchange, rng: random.Random, default: float = 0.3) -> float:
    if answer.retry_after and answer.retry_after.isdigit():
        return min(float(answer.retry_after), _MAX_WAIT) * rng.uniform(0.5, 1.0)
    return default * rng.uniform(0.5, 1.5)


class contextlib_clients:  # noqa: N801 - used like a function
    """One HTTP client per replica, closed together."""

    def __init__(self, replicas: Sequence[Replica], limits: httpx.Limits) -> None:
        self._clients = {
            # Longer than any bound of the service: its own timeouts must end a request first.
            r.name: httpx.AsyncClient(base_url=r.url, timeout=30.0, limits=limits)
            for r in replicas
        }

    async def __aenter__(self) -> dict[str, httpx.AsyncClient]:
        return self._clients

    async def __aexit__(self, *exc: object) -> None:
        for client in self._clients.values():
            await client.aclose()
