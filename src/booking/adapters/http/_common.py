"""What the HTTP adapters share: identity headers, the retry policy, peer base URLs."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import stamina
import structlog

from booking.domain.identity import Principal, normalise_role
from booking.ports.directory import ServiceDirectory

DEFAULT_SERVICE_ROLE = "ROLE_SERVICE_ACCOUNT"
_ROLE_PREFIX = "ROLE_"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds of the retries of one idempotent call (stamina's defaults are far too long)."""

    attempts: int = 3
    timeout: float = 2.0
    wait_initial: float = 0.1
    wait_max: float = 0.5
    wait_jitter: float = 0.1


NO_RETRY = RetryPolicy(attempts=1)
SERVER_ERRORS = frozenset(range(500, 600))
GATEWAY_ERRORS = frozenset({502, 503, 504})


class TransientStatus(Exception):
    """A response that is worth asking again (5xx on an idempotent call)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def is_transient(exc: Exception) -> bool:
    """Connection errors, timeouts and 5xx answers; never a 4xx or a decoding error."""
    return isinstance(exc, httpx.TransportError | TransientStatus)


def identity_headers(caller: Principal, service_role: str = DEFAULT_SERVICE_ROLE) -> dict[str, str]:
    """The platform's identity headers for an internal call (contracts section 1, outbound).

    Roles are spelled like the configured service role: `ROLE_X` when it has the prefix (the
    deployed platform), bare otherwise (older services that add `ROLE_` themselves).
    """
    prefix = _ROLE_PREFIX if service_role.upper().startswith(_ROLE_PREFIX) else ""
    service = normalise_role(service_role).upper()
    roles = [f"{prefix}{role}" for role in sorted(caller.roles) if role != service]
    roles.append(f"{prefix}{service}")
    headers = {
        "X-User-Id": str(int(caller.user_id)),
        "X-User-Name": caller.username,
        "X-User-Roles": ",".join(roles),
    }
    headers.update(correlation_headers())
    return headers


def correlation_headers() -> dict[str, str]:
    """Pass on the request and trace ids bound to the log context; invent a request id if none."""
    context: Mapping[str, Any] = structlog.contextvars.get_contextvars()
    request_id = context.get("request_id")
    headers = {"X-Request-ID": str(request_id) if request_id else uuid.uuid4().hex}
    trace_id = context.get("trace_id")
    if trace_id:
        headers["X-Trace-Id"] = str(trace_id)
    traceparent = context.get("traceparent")
    if traceparent:
        headers["traceparent"] = str(traceparent)
    return headers


class PeerAddress:
    """A peer's base URL: fixed, or looked up in a ServiceDirectory on every call."""

    def __init__(
        self, service: str, *, base_url: str | None, directory: ServiceDirectory | None
    ) -> None:
        if (base_url is None) == (directory is None):
            raise ValueError(f"{service}: give exactly one of base_url and directory")
        self.service = service
        self._base_url = base_url.rstrip("/") if base_url is not None else None
        self._directory = directory

    async def url(self, path: str) -> str:
        """The absolute URL of `path`; raises DependencyUnavailable if the peer is unknown."""
        if self._base_url is not None:
            return self._base_url + path
        assert self._directory is not None
        return (await self._directory.resolve(self.service)).rstrip("/") + path


async def send_retrying(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    request_timeout: float,
    policy: RetryPolicy,
    json: Any = None,
    transient_statuses: Container[int] = SERVER_ERRORS,
    on: Callable[[Exception], bool] | tuple[type[Exception], ...] = is_transient,
) -> httpx.Response:
    """Send an idempotent request, retried on transient failures within the policy's bounds.

    Answers the first response whose status is not transient; raises the last
    `httpx.TransportError` or `TransientStatus` when every attempt failed.
    """
    response: httpx.Response | None = None
    async for attempt in stamina.retry_context(
        on=on,
        attempts=policy.attempts,
        timeout=policy.timeout,
        wait_initial=policy.wait_initial,
        wait_max=policy.wait_max,
        wait_jitter=policy.wait_jitter,
    ):
        with attempt:
            response = await client.request(
                method, url, headers=headers, json=json, timeout=request_timeout
            )
            if response.status_code in transient_statuses:
                raise TransientStatus(response)
    assert response is not None
    return response
