"""The service's HTTP server protocol (entrypoints/server.py) on a real uvicorn over real sockets:
a whole small answer in one write, and streaming, HEAD, 100-continue and Connection: close as
uvicorn's own protocol does them."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from booking.entrypoints.cli import main
from booking.entrypoints.server import FLUSH_AT, PROTOCOL, CoalescingTransport

Endpoint = tuple[str, int]


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"]
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first,", "more_body": True})
        await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b"second", "more_body": False})
        return
    body = b"hello"
    if path == "/echo":
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    """A uvicorn server on the service's protocol, serving `_app` on a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()  # connections wait in the backlog until the server accepts them
    config = uvicorn.Config(_app, http=PROTOCOL, lifespan="on", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield sock.getsockname()[:2]
    finally:
        server.should_exit = True
        await task


def _request(method: str, path: str, *headers: str, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@contextlib.asynccontextmanager
async def _connection(endpoint: Endpoint) -> AsyncIterator[tuple[asyncio.StreamReader, Any]]:
    reader, writer = await asyncio.open_connection(*endpoint)
    try:
        yield reader, writer
    finally:
        writer.close()


async def _read(reader: asyncio.StreamReader) -> bytes:
    """One read: what has arrived, at least one byte."""
    return await asyncio.wait_for(reader.read(65536), 5)


async def _read_until_closed(reader: asyncio.StreamReader) -> bytes:
    data = b""
    while chunk := await asyncio.wait_for(reader.read(65536), 5):
        data += chunk
    return data


async def test_each_small_answer_arrives_in_one_read(endpoint: Endpoint) -> None:
    """Status line, headers and body leave in one write: the client's first read after
    asking holds the whole answer, every time (with uvicorn's own protocol the headers
    arrive alone, and the body in a second read)."""
    async with _connection(endpoint) as (reader, writer):
        for _ in range(20):
            writer.write(_request("GET", "/small"))
            first = await _read(reader)
            assert first.startswith(b"HTTP/1.1 200 OK\r\n")
            assert first.endswith(b"\r\n\r\nhello"), first


async def test_pipelined_requests_are_answered_in_order(endpoint: Endpoint) -> None:
    async with _connection(endpoint) as (reader, writer):
        writer.write(
            _request("POST", "/echo", body=b"one") + _request("POST", "/echo", body=b"two")
        )
        answers = b""
        while answers.count(b"HTTP/1.1 200 OK") < 2 or not answers.endswith(b"two"):
            answers += await _read(reader)
        first, second = answers.split(b"HTTP/1.1 200 OK")[1:]
        assert first.endswith(b"\r\n\r\none")
        assert second.endswith(b"\r\n\r\ntwo")


async def test_a_streamed_answer_arrives_in_order_and_the_late_part_later(
    endpoint: Endpoint,
) -> None:
    async with _connection(endpoint) as (reader, writer):
        writer.write(_request("GET", "/stream", "Connection: close"))
        first = await _read(reader)
        assert b"transfer-encoding: chunked" in first.lower()
        assert first.endswith(b"\r\n6\r\nfirst,\r\n"), first  # the headers and the first chunk
        rest = await _read_until_closed(reader)
        assert rest == b"6\r\nsecond\r\n0\r\n\r\n"


async def test_head_answers_its_headers_without_a_body(endpoint: Endpoint) -> None:
    async with _connection(endpoint) as (reader, writer):
        writer.write(_request("HEAD", "/small"))
        first = await _read(reader)
        assert first.startswith(b"HTTP/1.1 200 OK\r\n")
        assert first.endswith(b"content-length: 5\r\n\r\n")
        writer.write(_request("GET", "/small"))  # the connection is still usable
        assert (await _read(reader)).endswith(b"hello")


async def test_expect_100_continue_is_answered_before_the_body_is_sent(
    endpoint: Endpoint,
) -> None:
    async with _connection(endpoint) as (reader, writer):
        head = _request("POST", "/echo", "Expect: 100-continue", "Content-Length: 7")
        writer.write(head)
        interim = await _read(reader)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"payload")
        answer = await _read(reader)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert answer.endswith(b"\r\n\r\npayload")


async def test_connection_close_sends_the_whole_answer_before_closing(
    endpoint: Endpoint,
) -> None:
    async with _connection(endpoint) as (reader, writer):
        writer.write(_request("POST", "/echo", "Connection: close", body=b"x" * 100_000))
        answer = await _read_until_closed(reader)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"connection: close" in answer.lower()
        assert answer.endswith(b"\r\n\r\n" + b"x" * 100_000)


class _Recording(asyncio.Transport):
    """Records what reaches the socket's transport."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, bytes]] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.sent.append(("write", bytes(data)))

    def writelines(self, list_of_data: Any) -> None:
        self.sent.append(("writelines", b"|".join(bytes(d) for d in list_of_data)))

    def close(self) -> None:
        self.sent.append(("close", b""))
        self.closing = True

    def abort(self) -> None:
        self.sent.append(("abort", b""))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing


async def test_held_writes_leave_together_at_the_end_of_the_turn() -> None:
    loop = asyncio.get_running_loop()
    inner = _Recording()
    transport = CoalescingTransport(inner, loop)
    buffer = bytearray(b"head")
    transport.write(buffer)
    buffer[:] = b"XXXX"  # reused by the caller once write returned
    transport.write(b"")
    transport.writelines([b"a", b"b"])
    assert inner.sent == []  # nothing before the end of the turn
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert inner.sent == [("writelines", b"head|a|b")]
    transport.write(b"alone")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert inner.sent[1:] == [("write", b"alone")]


async def test_close_sends_what_is_held_first_and_abort_drops_it() -> None:
    loop = asyncio.get_running_loop()
    inner = _Recording()
    transport = CoalescingTransport(inner, loop)
    transport.write(b"answer")
    transport.close()
    assert inner.sent == [("write", b"answer"), ("close", b"")]

    inner = _Recording()
    transport = CoalescingTransport(inner, loop)
    transport.write(b"dropped")
    transport.abort()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert inner.sent == [("abort", b"")]


async def test_what_is_held_is_dropped_when_the_connection_is_lost_first() -> None:
    inner = _Recording()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"answer")
    inner.closing = True  # the peer went away before the end of the turn
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert inner.sent == []


async def test_a_large_write_is_not_held() -> None:
    inner = _Recording()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"h")
    transport.write(b"x" * FLUSH_AT)  # reaches the transport (and its flow control) at once
    assert inner.sent == [("writelines", b"h|" + b"x" * FLUSH_AT)]


@pytest.mark.parametrize(
    ("setting", "expected"), [(None, PROTOCOL), ("true", PROTOCOL), ("false", "httptools")]
)
def test_serve_runs_the_protocol_its_setting_names(
    setting: str | None, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`booking serve` hands uvicorn this module's protocol unless BOOKING_HTTP_ONE_WRITE is
    false (uvicorn itself is not started: its `run` records what it was given)."""
    given: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: given.update(kwargs, app=app))
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    monkeypatch.setenv("BOOKING_DATA_DIR", str(tmp_path / "data"))
    if setting is None:
        monkeypatch.delenv("BOOKING_HTTP_ONE_WRITE", raising=False)
    else:
        monkeypatch.setenv("BOOKING_HTTP_ONE_WRITE", setting)
    assert main(["serve", "--port", "8123"]) == 0
    assert given["app"] == "booking.entrypoints.app:asgi"
    assert given["http"] == expected
