"""peer_client: the httpx client for calls to the platform's peers, with a cheap connection pool."""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
from httpcore._async.interfaces import AsyncConnectionInterface
from httpcore._backends.anyio import AnyIOBackend
from httpcore._utils import is_socket_readable

# Sized for the concurrency of one worker: a connection per in-flight call, all kept alive.
PEER_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=30)


class _PeerStream(httpcore.AsyncNetworkStream):
    """An AnyIO stream whose "is_readable" probe reads a socket looked up once.

    httpcore asks every idle connection "is_readable" on every request (to notice peers that
    hung up); AnyIO answers the raw-socket lookup by building its whole attribute dictionary
    each time, which was the largest single cost of a peer call. The socket object is stable
    for the stream's life (`fileno()` turns -1 once closed, which reads as readable: dropped).
    While its backend's `probing` is off the probe answers "not readable" without a syscall.
    """

    __slots__ = ("_backend", "_inner", "_socket")

    def __init__(self, inner: httpcore.AsyncNetworkStream, backend: _PeerBackend) -> None:
        self._inner = inner
        self._backend = backend
        self._socket = inner.get_extra_info("socket")

    # The `timeout` parameters are httpcore's stream interface, not ours to change.
    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        return await self._inner.start_tls(ssl_context, server_hostname, timeout)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return self._backend.probing and is_socket_readable(self._socket)
        return self._inner.get_extra_info(info)


class _PeerBackend(AnyIOBackend):
    """httpcore's AnyIO backend, with streams whose idle probe is cheap and can be paused."""

    def __init__(self) -> None:
        super().__init__()
        self.probing = True

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await super().connect_tcp(host, port, timeout, local_address, socket_options)
        return _PeerStream(stream, self)


class _PeerPool(httpcore.AsyncConnectionPool):
    """httpcore's pool with its bookkeeping made linear in the number of connections.

    httpcore 1.0 rescans the pool on every request and response: for each idle connection it
    counts all connections again (quadratic), and for each queued request it lists every
    available and idle connection to take the first. Same decisions here, in one pass each:
    an idle connection is closed while the pool holds more than `max_keepalive_connections`
    connections (httpcore counts all of them, idle or not), and a queued request takes the
    first available connection, else a new one, else replaces the first idle one; a
    connection already handed to a request that has not started yet is not handed out again.

    httpcore also polls the socket of every idle connection on each pass, a syscall per idle
    connection per request, to drop those the peer hung up on. Here the sweep drops closed and
    keep-alive-expired connections without polling, and an idle connection's socket is polled
    when it is about to be handed out: one that the peer hung up on is closed and never used.
    """

    def __init__(self, *, network_backend: _PeerBackend, **options: Any) -> None:
        super().__init__(network_backend=network_backend, **options)
        self._backend = network_backend

    def _assign_requests_to_connections(self) -> list[AsyncConnectionInterface]:
        closing: list[AsyncConnectionInterface] = []
        connections = self._connections
        self._backend.probing = False
        try:
            for connection in list(connections):
                if connection.is_closed():
                    connections.remove(connection)
                elif connection.has_expired() or (
                    connection.is_idle() and len(connections) > self._max_keepalive_connections
                ):
                    connections.remove(connection)
                    closing.append(connection)
        finally:
            self._backend.probing = True

        # A connection handed to a request that has not started on it yet still looks idle
        # and available; giving it to a second request only makes one of them fail with
        # ConnectionNotAvailable and go round the pool again. HTTP/1.1: one request each.
        reserved = {id(r.connection) for r in self._requests if r.connection is not None}
        for pool_request in self._requests:
            if not pool_request.is_queued():
                continue
            origin = pool_request.request.url.origin
            chosen = self._first_available(origin, closing, reserved)
            if chosen is None and len(connections) < self._max_connections:
                chosen = self.create_connection(origin)
                connections.append(chosen)
            elif chosen is None:
                idle = next((c for c in connections if c.is_idle() and id(c) not in reserved), None)
                if idle is None:
                    continue
                connections.remove(idle)
                closing.append(idle)
                chosen = self.create_connection(origin)
                connections.append(chosen)
            reserved.add(id(chosen))
            pool_request.assign_to_connection(chosen)
        return closing

    def _first_available(
        self,
        origin: httpcore.Origin,
        closing: list[AsyncConnectionInterface],
        reserved: set[int],
    ) -> AsyncConnectionInterface | None:
        """The first unreserved connection that can take a request to `origin` now; an idle
        one whose peer hung up (socket readable, or its keep-alive over) is closed on the way."""
        for connection in list(self._connections):
            if id(connection) in reserved or not (
                connection.can_handle_request(origin) and connection.is_available()
            ):
                continue
            if connection.is_idle() and connection.has_expired():
                self._connections.remove(connection)
                closing.append(connection)
                continue
            return connection
        return None


def peer_transport(limits: httpx.Limits = PEER_LIMITS) -> httpx.AsyncHTTPTransport:
    """HTTP/1.1 keep-alive transport over the cheap backend; no proxy or netrc from the env."""
    transport = httpx.AsyncHTTPTransport(limits=limits, http1=True, http2=False, trust_env=False)
    transport._pool = _PeerPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=True,
        http2=False,
        network_backend=_PeerBackend(),
    )
    return transport


class _PeerCookies(httpx.Cookies):
    """A cookie jar that skips httpx's per-response cookie parsing when there is nothing to parse.

    httpx wraps every response and its request in urllib objects (re-parsing the URL) before
    the jar looks for Set-Cookie headers; a response without any stores nothing either way.
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)


def peer_client(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The one client an adapter (or the container, per peer) keeps for its whole life.

    `transport` wraps `peer_transport()` when given (metrics, tracing); the environment's proxy
    and netrc settings are never read, so requests skip those lookups.
    """
    client = httpx.AsyncClient(
        transport=transport if transport is not None else peer_transport(),
        trust_env=False,
        http2=False,
        follow_redirects=False,
    )
    # The `cookies` setter copies into a plain Cookies; the jar itself is kept as is.
    client._cookies = _PeerCookies()
    return client
