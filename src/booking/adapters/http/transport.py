"""peer_client: the httpx client for calls to the platform's peers, sent over aiohttp.

The adapters speak httpx (requests, responses, errors); the bytes travel over an aiohttp
connection pool. aiohttp parses HTTP in C and drives asyncio's transports directly, where
httpcore's pure-Python HTTP/1.1 and its AnyIO streams cost three to four times the CPU per call
(see bench/results/PROFILE.md): the peer calls are about a third of a booking's CPU.
`PeerClient` hands the adapters' requests to that transport without httpx's per-request
machinery they do not use.

The transport maps aiohttp's errors onto httpx's by what they say about the request, which is
what the adapters decide on: `ConnectError` / `ConnectTimeout` only when the request was never
sent (safe to repeat even for the Theater's non-idempotent lock); a connection dropped or timed
out after sending is `RemoteProtocolError` / `ReadError` / `ReadTimeout` (outcome unknown).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import aiohttp
import httpx
from httpx import USE_CLIENT_DEFAULT

# Sized for the concurrency of one worker: a connection per in-flight call, all kept alive.
# An idle connection is dropped after 4 s, before the peer drops it: a server closes idle
# connections on its own timer (uvicorn and Node after 5 s), and a request sent on a connection
# the peer is closing at that moment fails with an unknown outcome, which fails a booking when
# the call is the non-idempotent lock or checkout. Under load connections never idle that long.
PEER_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=4)

_HTTP11 = {"http_version": b"HTTP/1.1"}
_SET_COOKIE = frozenset({b"set-cookie", b"set-cookie2"})


def _transport_error(exc: Exception) -> httpx.TransportError:
    """The httpx error for an aiohttp failure; the order matters (subclasses first)."""
    message = str(exc) or exc.__class__.__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)  # no connection within the pool/connect timeouts
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message)  # refused, unreachable, DNS: nothing was sent
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(message)  # hung up before answering
    if isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
        return httpx.ReadTimeout(message)  # sent, no answer in time
    if isinstance(exc, aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(message)  # an answer that is not HTTP
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(message)
    return httpx.ReadError(message)  # reset, broken pipe, truncated body: outcome unknown


def raw_headers(items: Iterable[tuple[bytes, bytes]]) -> httpx.Headers:
    """`httpx.Headers(items)` for header byte pairs, built in one pass.

    httpx normalises each item of a list with two function calls, for pairs that are bytes
    already; the result is the same list of (name, lower-case name, value), encoding found
    on first use as httpx would. A Request or Response given these copies the list as is."""
    headers = httpx.Headers()
    headers._list = [(key, key.lower(), value) for key, value in items]
    return headers


def _read(response: httpx.Response, content: bytes) -> None:
    """Leave `response` as its `aread` would, for a body with no Content-Encoding to undo: the
    content kept, the stream consumed and closed. `aread` gets there through httpx's decoder,
    chunker and request context, 11 us per answer for a body already in memory; a body that is
    encoded still goes that way, to be decoded."""
    response._content = content
    response._num_bytes_downloaded = len(content)
    response.is_stream_consumed = True
    response.is_closed = True


class PeerTransport(httpx.AsyncBaseTransport):
    """An httpx transport over one aiohttp session (made on first use, inside the event loop).

    HTTP/1.1 keep-alive; no cookies, proxies or decompression of its own (the httpx client
    above keeps the cookie jar and decodes bodies); each answer is read whole before it is
    handed back, so its connection returns to the pool at once."""

    def __init__(self, limits: httpx.Limits = PEER_LIMITS) -> None:
        self._limits = limits
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[Any, ...], aiohttp.ClientTimeout] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            expiry = self._limits.keepalive_expiry
            connector = aiohttp.TCPConnector(
                limit=self._limits.max_connections or 0,  # 0: no limit, as httpx's None
                limit_per_host=0,
                # httpx's None (never expire) as a day: aiohttp reads 0 as "do not keep alive".
                keepalive_timeout=86_400.0 if expiry is None else expiry,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                trust_env=False,
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        asked = request.extensions.get("timeout") or {}
        key = (asked.get("pool"), asked.get("connect"), asked.get("read"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            pool, connect, read = key
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None, connect=pool, sock_connect=connect, sock_read=read
            )
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        headers = [
            (key.decode("latin-1"), value.decode("latin-1")) for key, value in request.headers.raw
        ]
        try:
            async with self._client().request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=self._timeout(request),
            ) as answer:
                content = await answer.read()
                status, answer_headers, reason = answer.status, answer.raw_headers, answer.reason
                encoded = "Content-Encoding" in answer.headers
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _transport_error(exc) from exc
        extensions: dict[str, Any] = dict(_HTTP11)
        if reason:
            extensions["reason_phrase"] = reason.encode("latin-1")
        response = httpx.Response(
            status,
            headers=raw_headers(answer_headers),
            stream=httpx.ByteStream(content),
            request=request,
            extensions=extensions,
        )
        if not encoded:
            _read(response, content)
        return response

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def peer_transport(limits: httpx.Limits = PEER_LIMITS) -> PeerTransport:
    """HTTP/1.1 keep-alive transport on aiohttp; no proxy or netrc from the environment."""
    return PeerTransport(limits)


class _PeerCookies(httpx.Cookies):
    """A cookie jar that skips httpx's per-response cookie parsing when there is nothing to parse.

    httpx wraps every response and its request in urllib objects (re-parsing the URL) before
    the jar looks for Set-Cookie headers; a response without any stores nothing either way.
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        if any(key.lower() in _SET_COOKIE for key, _ in response.headers.raw):
            super().extract_cookies(response)


class PeerClient(httpx.AsyncClient):
    """The httpx client the adapters send through, with a direct path for their requests.

    A request built whole by the adapters (its timeout set, no auth, no redirects to follow,
    no event hooks on the client) goes straight to the transport: httpx's auth and redirect
    loops, its timer and its response stream wrapper cost a fifth of a peer call's CPU and do
    nothing for such a request. The answer is read whole, its cookies kept, as `send` does;
    anything else goes through httpx's own `send`.
    """

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        super().__init__(transport=transport, trust_env=False, http2=False, follow_redirects=False)
        self._direct = transport
        # The `cookies` setter copies into a plain Cookies; the jar itself is kept as is.
        self._cookies = _PeerCookies()

    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        # httpx's own argument types (`AuthTypes`, `UseClientDefault`) are not exported.
        auth: Any = USE_CLIENT_DEFAULT,
        follow_redirects: Any = USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        if (
            stream
            or auth is not USE_CLIENT_DEFAULT
            or follow_redirects is True
            or self.auth is not None
            or self.follow_redirects
            or self.is_closed
            or "timeout" not in request.extensions
            or any(self.event_hooks.values())
        ):
            return await super().send(
                request, stream=stream, auth=auth, follow_redirects=follow_redirects
            )
        response = await self._direct.handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        except BaseException:
            await response.aclose()
            raise
        self.cookies.extract_cookies(response)
        return response


def peer_client(transport: httpx.AsyncBaseTransport | None = None) -> PeerClient:
    """The one client an adapter (or the container, per peer) keeps for its whole life.

    `transport` wraps `peer_transport()` when given (metrics, tracing); the environment's proxy
    and netrc settings are never read, so requests skip those lookups.
    """
    return PeerClient(transport if transport is not None else peer_transport())
