"""What the HTTP adapters share: identity headers, the retry policy, peer base URLs."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import stamina
import structlog

from booking.adapters.http.transport import peer_client, raw_headers
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
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_JSON_TYPE = b"application/json"
_encode_json = msgspec.json.Encoder().encode
# Parsed URLs and timeout extensions, reused: peers are few and so are their paths.
_URL_CACHE_SIZE = 512
_urls: dict[str, httpx.URL] = {}
_timeouts: dict[float, dict[str, Any]] = {}
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
    headers = {
        "X-User-Id": str(int(caller.user_id)),
        "X-User-Name": caller.username,
        "X-User-Roles": _roles_header(caller.roles, service_role),
    }
    headers.update(correlation_headers())
    return headers


@functools.lru_cache(maxsize=256)
def _roles_header(roles: frozenset[str], service_role: str) -> str:
    # Callers hold a handful of role sets: spell each once, not on every call.
    prefix = _ROLE_PREFIX if service_role.upper().startswith(_ROLE_PREFIX) else ""
    service = normalise_role(service_role).upper()
    spelled = [f"{prefix}{role}" for role in sorted(roles) if role != service]
    spelled.append(f"{prefix}{service}")
    return ",".join(spelled)


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


def encode_json(body: Any) -> bytes:
    """A JSON request body as httpx's `json=` would send it (compact, UTF-8), by msgspec."""
    return _encode_json(body)


def _url(url: str) -> httpx.URL:
    parsed = _urls.get(url)
    if parsed is None:
        if len(_urls) >= _URL_CACHE_SIZE:
            _urls.clear()
        parsed = _urls[url] = httpx.URL(url)
    return parsed


def _timeout(seconds: float) -> dict[str, Any]:
    extensions = _timeouts.get(seconds)
    if extensions is None:
        extensions = _timeouts[seconds] = {"timeout": httpx.Timeout(seconds).as_dict()}
    return extensions


def build_request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    headers: Mapping[str, str],
    *,
    timeout: float,
    json: bytes | None = None,
) -> httpx.Request:
    """The request `client.build_request` would make, built in one pass.

    `json` is an encoded JSON body (see `encode_json`). httpx re-normalises its header
    collections four times per request; here the wire headers are laid out once, in httpx's
    order: Host, the client's default headers (unless `headers` names them), `headers`, then
    Content-Length and Content-Type (an empty POST's Content-Length follows Host). A client
    with cookies, query params or a base URL goes through httpx's own builder, which merges
    them.
    """
    if client.cookies or client.params or str(client.base_url):
        if json is not None and not any(key.lower() == "content-type" for key in headers):
            headers = {**headers, "Content-Type": "application/json"}
        return client.build_request(method, url, headers=headers, content=json, timeout=timeout)
    target = _url(url)
    asked = {key.lower() for key in headers}
    raw: list[tuple[bytes, bytes]] = [(b"Host", target.netloc)]
    raw.extend(item for item in client.headers.raw if item[0].decode().lower() not in asked)
    raw.extend((key.encode("ascii"), value.encode("ascii")) for key, value in headers.items())
    method = method.upper()
    if json is not None:
        raw.append((b"Content-Length", str(len(json)).encode("ascii")))
        if "content-type" not in asked:
            raw.append((b"Content-Type", _JSON_TYPE))
    elif method in _BODY_METHODS:
        raw.insert(1, (b"Content-Length", b"0"))  # where httpx puts it for an empty body
    request = httpx.Request(
        method,
        target,
        headers=raw_headers(raw),
        stream=httpx.ByteStream(json or b""),
        extensions=_timeout(timeout),
    )
    request.read()
    return request


async def send_retrying(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    request_timeout: float,
    policy: RetryPolicy,
    json: bytes | None = None,
    transient_statuses: Container[int] = SERVER_ERRORS,
    on: Callable[[Exception], bool] | tuple[type[Exception], ...] = is_transient,
) -> httpx.Response:
    """Send an idempotent request, retried on transient failures within the policy's bounds.

    `json` is an encoded JSON body. Answers the first response whose status is not transient;
    raises the last `httpx.TransportError` or `TransientStatus` when every attempt failed.
    A policy of one attempt is sent without stamina's machinery (nothing would be retried);
    otherwise stamina only takes over once the first attempt has failed in a retryable way.
    """

    async def once() -> httpx.Response:
        sent = await client.send(
            build_request(client, method, url, headers, timeout=request_timeout, json=json)
        )
        if sent.status_code in transient_statuses:
            raise TransientStatus(sent)
        return sent

    if policy.attempts <= 1:
        return await once()
    # Nearly every call succeeds at once, and stamina's machinery costs a third of a peer
    # call's CPU. So the first attempt runs on its own; a failure worth retrying is replayed
    # as stamina's first attempt, which then backs off, logs, counts and retries as usual.
    started = time.monotonic()
    try:
        return await once()
    except Exception as exc:
        left = policy.timeout - (time.monotonic() - started)
        if not _retryable(exc, on) or left <= 0:
            raise
        first: Exception | None = exc
    response: httpx.Response | None = None
    async for attempt in stamina.retry_context(
        on=on,
        attempts=policy.attempts,
        timeout=left,
        wait_initial=policy.wait_initial,
        wait_max=policy.wait_max,
        wait_jitter=policy.wait_jitter,
    ):
        with attempt:
            if first is not None:
                failed, first = first, None
                raise failed
            response = await once()
    assert response is not None
    return response


def _retryable(
    exc: Exception, on: Callable[[Exception], bool] | tuple[type[Exception], ...]
) -> bool:
    return isinstance(exc, on) if isinstance(on, tuple) else on(exc)


class PeerAdapter:
    """What every peer adapter holds: where the peer is, the client (its own unless given, and
    then closed by `aclose`), the per-call timeout and the service role it adds to callers."""

    def __init__(
        self,
        *,
        service: str,
        base_url: str | None,
        directory: ServiceDirectory | None,
        client: httpx.AsyncClient | None,
        timeout: float,
        service_role: str,
    ) -> None:
        self._address = PeerAddress(service, base_url=base_url, directory=directory)
        self._owns_client = client is None
        self._client = client if client is not None else peer_client()
        self._timeout = timeout
        self._service_role = service_role

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
