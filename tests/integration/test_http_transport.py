"""peer_client against real sockets: keep-alive reuse, idle connections the peer closed, and
failures mapped to the httpx error that says whether the request was sent."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import hypothesis.strategies as st
import pytest
from hypothesis import given

from booking.adapters.http._common import build_request, encode_json
from booking.adapters.http.transport import (
    PEER_LIMITS,
    peer_client,
    peer_transport,
    raw_headers,
)

_ANSWER = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n"
    b"connection: keep-alive\r\n\r\n{}"
)


class _OneShotServer:
    """Answers one request per connection, keeps it open, and closes it when asked."""

    def __init__(self) -> None:
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(_ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def drop_all(self) -> None:
        for writer in self.writers:
            writer.close()
        self.writers.clear()
        await asyncio.sleep(0.05)  # let the FINs reach the client's sockets

    async def stop(self) -> None:
        await self.drop_all()
        assert self._server is not None
        self._server.close()


@pytest.fixture
async def server() -> AsyncIterator[_OneShotServer]:
    srv = _OneShotServer()
    await srv.start()
    yield srv
    await srv.stop()


async def test_calls_reuse_one_kept_alive_connection(server: _OneShotServer) -> None:
    """Sequential calls share one connection: the client keeps it alive between calls."""
    async with peer_client() as client:
        for _ in range(5):
            response = await client.get(f"http://127.0.0.1:{server.port}/x", timeout=5)
            assert response.status_code == 200
    assert server.connections == 1


async def test_idle_connection_closed_by_the_peer_is_replaced(server: _OneShotServer) -> None:
    """A kept-alive connection the peer hung up on is noticed and the next call opens a new one."""
    async with peer_client() as client:
        first = await client.get(f"http://127.0.0.1:{server.port}/x", timeout=5)
        assert first.status_code == 200
        await server.drop_all()
        second = await client.get(f"http://127.0.0.1:{server.port}/x", timeout=5)
        assert second.status_code == 200
    assert server.connections == 2


async def test_concurrent_calls_get_a_connection_each(server: _OneShotServer) -> None:
    """Sixteen concurrent calls are all answered, each on a connection the pool opened."""
    async with peer_client() as client:
        answers = await asyncio.gather(
            *(client.get(f"http://127.0.0.1:{server.port}/x", timeout=5) for _ in range(16))
        )
    assert [a.status_code for a in answers] == [200] * 16
    assert 1 <= server.connections <= 16


_IDENTITY = {
    "X-User-Id": "7",
    "X-User-Name": "7_x",
    "X-User-Roles": "ROLE_USER",
    "X-Request-ID": "r",
}


@pytest.mark.parametrize(
    ("method", "url", "headers", "body"),
    [
        ("POST", "http://127.0.0.1:9/api/v1/shows/internal/seats/verify", _IDENTITY, {"a": [1]}),
        ("POST", "http://127.0.0.1:9/x", {**_IDENTITY, "Content-Type": "application/json"}, {}),
        ("POST", "http://127.0.0.1:9/x", _IDENTITY, None),
        ("GET", "http://127.0.0.1:9/x/s%2F1?q=1", {**_IDENTITY, "Accept": "text/plain"}, None),
        ("delete", "http://127.0.0.1:9/eureka/apps/A/b", {}, None),
    ],
)
async def test_built_request_is_the_one_httpx_builds(
    method: str, url: str, headers: dict[str, str], body: object
) -> None:
    """The one-pass request builder yields httpx's own request: headers, body, URL, timeout."""
    async with peer_client() as client:
        ours = build_request(
            client,
            method,
            url,
            headers,
            timeout=3.0,
            json=None if body is None else encode_json(body),
        )
        theirs = client.build_request(method, url, headers=headers, json=body, timeout=3.0)
    assert ours.method == theirs.method
    assert ours.url == theirs.url
    assert ours.headers.raw == theirs.headers.raw
    assert ours.headers.multi_items() == theirs.headers.multi_items()
    assert ours.headers.encoding == theirs.headers.encoding
    assert ours.headers.get("x-USER-id") == theirs.headers.get("x-USER-id")
    assert ours.content == theirs.content
    assert ours.extensions == theirs.extensions


async def test_client_cookies_still_go_with_built_requests() -> None:
    """A client holding a peer's cookie sends it, as httpx's builder would."""
    async with peer_client() as client:
        client.cookies.set("JSESSIONID", "z", domain="127.0.0.1")
        ours = build_request(client, "POST", "http://127.0.0.1:9/x", _IDENTITY, timeout=1.0)
    assert ours.headers["cookie"] == "JSESSIONID=z"


async def test_a_full_pool_queues_calls_on_its_connections(server: _OneShotServer) -> None:
    """Sixteen concurrent calls through a pool of two are all answered on those two connections."""
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    async with peer_client(peer_transport(limits)) as client:
        answers = await asyncio.gather(
            *(client.get(f"http://127.0.0.1:{server.port}/x", timeout=5) for _ in range(16))
        )
    assert [a.status_code for a in answers] == [200] * 16
    assert server.connections <= 2


async def test_a_peer_cookie_is_kept_and_sent_back() -> None:
    """A Set-Cookie from a peer is stored by the client and goes with the next call."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                seen.append(await reader.readuntil(b"\r\n\r\n"))
                writer.write(
                    b"HTTP/1.1 200 OK\r\nset-cookie: JSESSIONID=abc; Path=/\r\n"
                    b"content-length: 0\r\n\r\n"
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        async with peer_client() as client:
            await client.get(f"http://127.0.0.1:{port}/a", timeout=5)
            await client.get(f"http://127.0.0.1:{port}/b", timeout=5)
            assert client.cookies.get("JSESSIONID") == "abc"
    finally:
        srv.close()
    assert b"jsessionid=abc" not in seen[0].lower()
    assert b"cookie: jsessionid=abc" in seen[1].lower()


async def _serve_with(handler: object) -> tuple[asyncio.Server, int]:
    srv = await asyncio.start_server(handler, "127.0.0.1", 0)  # type: ignore[arg-type]
    return srv, srv.sockets[0].getsockname()[1]


async def _answer_once(answer: bytes | None) -> tuple[asyncio.Server, int, list[bytes]]:
    """A server that reads one request head (kept in the list), writes `answer` (None: nothing)
    and hangs up."""
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\r\n\r\n"))
        if answer is not None:
            writer.write(answer)
            await writer.drain()
        writer.close()

    srv, port = await _serve_with(serve)
    return srv, port, received


async def test_a_refused_connection_is_a_connect_error() -> None:
    """Nothing listening: ConnectError, the one failure after which a request was never sent."""
    srv, port = await _serve_with(lambda r, w: None)
    srv.close()
    await srv.wait_closed()
    async with peer_client() as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(f"http://127.0.0.1:{port}/x", content=b"{}", timeout=2)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (None, httpx.RemoteProtocolError),  # read the request, hung up without answering
        (b"NOT HTTP AT ALL\r\n\r\n", httpx.RemoteProtocolError),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}", httpx.TransportError),
    ],
)
async def test_a_request_that_reached_the_peer_is_never_a_connect_error(
    answer: bytes | None, error: type[Exception]
) -> None:
    """Dropped or garbled after the request went out: an error of unknown outcome, never
    ConnectError/ConnectTimeout (an adapter repeats a non-idempotent call only after those)."""
    srv, port, received = await _answer_once(answer)
    try:
        async with peer_client() as client:
            with pytest.raises(error) as caught:
                await client.post(f"http://127.0.0.1:{port}/lock", content=b"{}", timeout=2)
    finally:
        srv.close()
    assert received, "the request never reached the server"
    assert not isinstance(caught.value, httpx.ConnectError | httpx.ConnectTimeout)


@asynccontextmanager
async def _silent_peer() -> AsyncIterator[int]:
    """A server (its port) that reads each request head and never answers."""
    hold = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await hold.wait()
        writer.close()

    srv, port = await _serve_with(serve)
    try:
        yield port
    finally:
        hold.set()
        srv.close()


async def test_a_silent_peer_is_a_read_timeout() -> None:
    """Sent, and no answer within the call's timeout: ReadTimeout (outcome unknown)."""
    async with _silent_peer() as port, peer_client() as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(f"http://127.0.0.1:{port}/x", content=b"{}", timeout=0.3)


async def test_no_free_connection_in_time_is_a_connect_timeout() -> None:
    """A pool of one held by a slow call: the next call gives up waiting for a connection
    with ConnectTimeout, its request never sent."""
    hold = asyncio.Event()
    requests = [0]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        requests[0] += 1
        await hold.wait()
        writer.write(_ANSWER)
        await writer.drain()
        writer.close()

    srv, port = await _serve_with(serve)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    try:
        async with peer_client(peer_transport(limits)) as client:
            slow = asyncio.create_task(client.get(f"http://127.0.0.1:{port}/slow", timeout=5))
            await asyncio.sleep(0.1)
            with pytest.raises(httpx.ConnectTimeout):
                await client.get(f"http://127.0.0.1:{port}/x", timeout=httpx.Timeout(5, pool=0.2))
            hold.set()
            assert (await slow).status_code == 200
    finally:
        hold.set()
        srv.close()
    assert requests[0] == 1


async def test_the_request_target_reaches_the_peer_as_httpx_encoded_it() -> None:
    """Path and query go out byte for byte (an escaped slash stays escaped)."""
    srv, port, received = await _answer_once(_ANSWER)
    try:
        async with peer_client() as client:
            url = f"http://127.0.0.1:{port}/eureka/apps/BOOKING/h:booking:80/s%2F1?q=a%20b&r=1"
            assert (await client.delete(url, timeout=2)).status_code == 200
    finally:
        srv.close()
    [head] = received
    assert head.split(b"\r\n", 1)[0] == (
        b"DELETE /eureka/apps/BOOKING/h:booking:80/s%2F1?q=a%20b&r=1 HTTP/1.1"
    )


async def test_a_request_without_a_timeout_gets_the_clients() -> None:
    """A request built by hand (no timeout of its own) still times out on the client's
    timeout: the direct path never sends a request that could wait forever."""
    async with _silent_peer() as port, peer_client() as client:
        client.timeout = httpx.Timeout(0.3)
        request = httpx.Request("POST", f"http://127.0.0.1:{port}/x", content=b"{}")
        assert "timeout" not in request.extensions
        async with asyncio.timeout(5):
            with pytest.raises(httpx.ReadTimeout):
                await client.send(request)


async def test_event_hooks_of_the_client_still_run(server: _OneShotServer) -> None:
    """Hooks set on the client see every request and response, as with httpx's client."""
    seen: list[str] = []

    async def on_request(request: httpx.Request) -> None:
        seen.append(f"request {request.url.path}")

    async def on_response(response: httpx.Response) -> None:
        seen.append(f"response {response.status_code}")

    async with peer_client() as client:
        client.event_hooks = {"request": [on_request], "response": [on_response]}
        response = await client.get(f"http://127.0.0.1:{server.port}/hooked", timeout=5)
    assert response.json() == {}
    assert seen == ["request /hooked", "response 200"]


async def test_a_redirect_is_followed_when_asked(server: _OneShotServer) -> None:
    """`follow_redirects=True` on a call follows the peer's redirect, as httpx's client does."""
    srv, port, received = await _answer_once(
        b"HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:"
        + str(server.port).encode()
        + b"/there\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    try:
        async with peer_client() as client:
            followed = await client.get(
                f"http://127.0.0.1:{port}/here", timeout=5, follow_redirects=True
            )
            assert followed.status_code == 200
            assert str(followed.url).endswith("/there")
            assert [r.status_code for r in followed.history] == [302]
    finally:
        srv.close()
    assert received


async def test_a_closed_client_refuses_to_send(server: _OneShotServer) -> None:
    client = peer_client()
    await client.aclose()
    with pytest.raises(RuntimeError):
        await client.get(f"http://127.0.0.1:{server.port}/x", timeout=5)
    assert server.connections == 0


async def test_an_idle_connection_is_dropped_after_the_keep_alive_expiry(
    server: _OneShotServer,
) -> None:
    """A connection idle for longer than the expiry is not reused: the client drops it before
    the peer's own idle timer can close it under a request."""
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4, keepalive_expiry=0.2)
    async with peer_client(peer_transport(limits)) as client:
        url = f"http://127.0.0.1:{server.port}/x"
        await client.get(url, timeout=5)
        await client.get(url, timeout=5)
        assert server.connections == 1
        await asyncio.sleep(0.5)
        await client.get(url, timeout=5)
    assert server.connections == 2


def test_peer_connections_idle_out_before_common_server_timeouts() -> None:
    """uvicorn and Node close idle connections after 5 s; the client lets go first."""
    assert PEER_LIMITS.keepalive_expiry is not None
    assert 0 < PEER_LIMITS.keepalive_expiry < 5


@pytest.mark.parametrize("encoding", [None, "gzip"])
async def test_an_answer_is_left_as_httpx_leaves_one_it_has_read(encoding: str | None) -> None:
    """The transport hands back a body it read whole without httpx's decoding pass when there
    is nothing to decode; either way the response is the one httpx's own transport gives."""
    body = b'{"seats": [1, 2, 3], "name": "caf\xc3\xa9"}'
    wire = gzip.compress(body) if encoding else body
    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(wire)}\r\n"
    if encoding:
        head += f"content-encoding: {encoding}\r\n"
    answer = head.encode() + b"connection: close\r\n\r\n" + wire

    async def fetch(client: httpx.AsyncClient) -> httpx.Response:
        srv, port, _ = await _answer_once(answer)
        try:
            return await client.get(f"http://127.0.0.1:{port}/x", timeout=5)
        finally:
            srv.close()

    async with peer_client() as ours, httpx.AsyncClient(trust_env=False) as stock:
        mine, theirs = await fetch(ours), await fetch(stock)
    for response in (mine, theirs):
        assert response.content == body
        assert response.json()["name"] == "café"
    observed = (
        "status_code",
        "http_version",
        "reason_phrase",
        "is_closed",
        "is_stream_consumed",
        "num_bytes_downloaded",
        "text",
    )
    assert {name: getattr(mine, name) for name in observed} == {
        name: getattr(theirs, name) for name in observed
    }
    assert mine.headers["content-length"] == str(len(wire))
    assert mine.headers.multi_items() == theirs.headers.multi_items()
    assert mine.headers.encoding == theirs.headers.encoding
    assert [part async for part in mine.aiter_bytes()] == [body]


@pytest.mark.parametrize(("encoding", "read_whole"), [(None, True), ("gzip", False)])
async def test_the_transport_hands_back_plain_bodies_already_read(
    encoding: str | None, read_whole: bool
) -> None:
    """Straight from the transport, before anyone reads it: a plain body is there already, an
    encoded one is left to httpx's decoder."""
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n"
    if encoding:
        head += f"content-encoding: {encoding}\r\n".encode()
    srv, port, _ = await _answer_once(head + b"\r\n{}")
    transport = peer_transport()
    try:
        request = httpx.Request("GET", f"http://127.0.0.1:{port}/x", extensions={"timeout": {}})
        response = await transport.handle_async_request(request)
    finally:
        srv.close()
        await transport.aclose()
    assert response.is_stream_consumed is read_whole
    if read_whole:
        assert response.content == b"{}"
    else:
        with pytest.raises(httpx.ResponseNotRead):
            _ = response.content


# Header names are tokens (ASCII letters, digits and a few marks); values may be any bytes.
_NAMES = st.text("abcXYZ-019_!#", min_size=1, max_size=10).map(str.encode)


@given(st.lists(st.tuples(_NAMES, st.binary(max_size=12)), max_size=8))
def test_raw_headers_are_the_headers_httpx_builds(items: list[tuple[bytes, bytes]]) -> None:
    """Built in one pass, the same headers as httpx's own normalising constructor: every
    item, every case-insensitive lookup, the encoding found on first use."""
    ours, theirs = raw_headers(items), httpx.Headers(items)
    assert ours.raw == theirs.raw
    assert ours.encoding == theirs.encoding
    assert ours.multi_items() == theirs.multi_items()
    for key, _ in items:
        name = key.decode(theirs.encoding).upper()
        assert ours.get_list(name) == theirs.get_list(name)
        assert (name in ours) == (name in theirs)
