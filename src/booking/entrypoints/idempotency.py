"""Idempotency-Key on create (the IETF draft's rules): one answer per key and caller."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from litestar import Response

from booking.entrypoints.problems import MEDIA_TYPE, ApiError, problem_for, problem_response
from booking.ports.clock import Clock
from booking.ports.errors import DependencyUnavailable
from booking.ports.idempotency import (
    IdempotencyStore,
    InFlight,
    KeyReused,
    Replay,
    StoredResponse,
)

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as Stripe accepts

Created = tuple[int, bytes, int | None]  # status, JSON body, resource id


def parse_key(value: str | None) -> str | None:
    if value is None:
        return None
    key = value.strip()
    if not _KEY.match(key):
        raise ApiError(
            400,
            "INVALID_IDEMPOTENCY_KEY",
            f"{HEADER} must be 1 to 255 visible ASCII characters",
        )
    return key


def fingerprint(method: str, path: str, canonical_body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), canonical_body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def location_of(resource_id: int | None, base_path: str) -> dict[str, str]:
    return {"Location": f"{base_path}/{resource_id}"} if resource_id is not None else {}


class Idempotency:
    """Contract: same key (per caller) and same request → the first answer again, for
    `keep_for`; same key, other request → 422; a repeat while the first runs → 409. Answers
    of 5xx (and cancelled requests) are not kept: the key may be used again at once."""

    def __init__(
        self,
        store: IdempotencyStore,
        clock: Clock,
        keep_for: timedelta,
        in_flight_for: timedelta = timedelta(seconds=60),
    ) -> None:
        self._store = store
        self._clock = clock
        self._keep_for = keep_for
        self._in_flight_for = in_flight_for

    async def run(
        self,
        scope: str,
        key: str,
        request_fingerprint: str,
        instance: str,
        base_path: str,
        action: Callable[[], Awaitable[Created]],
    ) -> Response[Any]:
        outcome = await self._store.begin(
            scope, key, request_fingerprint, self._clock.now(), self._in_flight_for
        )
        if isinstance(outcome, Replay):
            return self._replay(outcome.response, base_path)
        if isinstance(outcome, InFlight):
            raise ApiError(409, "IDEMPOTENCY_KEY_IN_USE", "a request with this key is in progress")
        if isinstance(outcome, KeyReused):
            raise ApiError(
                422, "IDEMPOTENCY_KEY_REUSED", "this key was used with another request body"
            )
        try:
            status, body, resource_id = await action()
        except Exception as exc:
            problem = problem_for(exc)
            if problem.status >= 500:
                await self._forget(scope, key)
                raise
            response = problem_response(problem, instance)
            await self._keep(scope, key, StoredResponse(problem.status, response.content))
            return response
        except BaseException:
            await self._forget(scope, key)
            raise
        await self._keep(scope, key, StoredResponse(status, body, resource_id))
        return Response(
            content=body,
            status_code=status,
            media_type="application/json",
            headers=location_of(resource_id, base_path),
        )

    def _replay(self, stored: StoredResponse, base_path: str) -> Response[Any]:
        ok = stored.status_code < 400
        headers = {REPLAYED_HEADER: "true"}
        if ok:
            headers |= location_of(stored.resource_id, base_path)
        return Response(
            content=stored.body,
            status_code=stored.status_code,
            media_type="application/json" if ok else MEDIA_TYPE,
            headers=headers,
        )

    async def _keep(self, scope: str, key: str, response: StoredResponse) -> None:
        try:
            await self._store.complete(scope, key, response, self._clock.now(), self._keep_for)
        except DependencyUnavailable:
            # The answer stands; a retry finds the key in flight, then free after the bound.
            log.warning("idempotency answer for a key could not be stored")

    async def _forget(self, scope: str, key: str) -> None:
        try:
            await self._store.forget(scope, key)
        except DependencyUnavailable:
            log.warning("idempotency key could not be released; it frees itself later")
