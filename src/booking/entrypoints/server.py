"""The HTTP server's protocol: uvicorn's httptools protocol, each answer sent in one write.

uvicorn writes an answer's status line and headers when the app sends `http.response.start`,
then its body on `http.response.body`: two `send` system calls and two TCP segments for every
answer, and the receiving side wakes twice. Here the connection's transport holds what is
written during one turn of the event loop and sends it in one `writelines` when the turn ends,
so a whole small answer leaves in one segment, and the answers of one turn leave one after the
other instead of between the work of other requests, which is what makes it pay under load
(bench/results/PROFILE.md: the bare endpoint's CPU per request at 64 connections 89 -> 74 µs).
The price is that an answer waits for the end of its turn: one more turn of an idle loop, about
14 µs on the development machine. More than `FLUSH_AT` bytes held are sent at once, so a large
or streamed answer meets the transport's flow control as before; the order of bytes is
unchanged.

`booking serve` (and the benchmark's bare endpoint, so that both run on the same server
settings) passes `PROTOCOL` as uvicorn's `http` setting; `BOOKING_HTTP_ONE_WRITE=false` turns
it off (`protocol_for`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

PROTOCOL = "booking.entrypoints.server:HttpProtocol"
# Held bytes that are sent at once instead of at the end of the turn: a large or streamed
# answer reaches the transport (and its flow control) in pieces of about this size.
FLUSH_AT = 64 * 1024

_Bytes = bytes | bytearray | memoryview


def protocol_for(one_write: bool) -> str:
    """uvicorn's `http` setting: this module's protocol, or uvicorn's own httptools one."""
    return PROTOCOL if one_write else "httptools"


class CoalescingTransport(asyncio.Transport):
    """A transport that sends what is written in one event loop turn in one go.

    Writes are held until the end of the current turn (or until `FLUSH_AT` bytes are held)
    and then leave together in one `writelines` (a single `writev` on uvloop). `close` and
    `write_eof` send what is held first; `abort` drops it, as it drops the transport's own
    buffer. Everything else is the wrapped transport's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._inner = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._held_size = 0

    def write(self, data: _Bytes) -> None:
        if not data:
            return
        if not self._held:
            self._loop.call_soon(self._flush)
        # A copy of a mutable buffer: the caller may reuse it once write returns.
        chunk = data if isinstance(data, bytes) else bytes(data)
        self._held.append(chunk)
        self._held_size += len(chunk)  # bytes, also for a memoryview of wider items
        if self._held_size >= FLUSH_AT:
            self._flush()  # a large answer meets the transport's flow control at once

    def writelines(self, list_of_data: Iterable[_Bytes]) -> None:
        for data in list_of_data:
            self.write(data)

    def _flush(self) -> None:
        held = self._held
        if not held:
            return
        self._held = []
        self._held_size = 0
        if self._inner.is_closing():
            return
        if len(held) == 1:
            self._inner.write(held[0])
        else:
            self._inner.writelines(held)

    def close(self) -> None:
        self._flush()
        self._inner.close()

    def write_eof(self) -> None:
        self._flush()
        self._inner.write_eof()

    def abort(self) -> None:
        self._held = []
        self._held_size = 0
        self._inner.abort()

    def can_write_eof(self) -> bool:
        return self._inner.can_write_eof()

    def is_closing(self) -> bool:
        return self._inner.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._inner.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        return self._inner.get_write_buffer_size() + self._held_size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._inner.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._inner.set_write_buffer_limits(high, low)

    def pause_reading(self) -> None:
        self._inner.pause_reading()

    def resume_reading(self) -> None:
        self._inner.resume_reading()

    def is_reading(self) -> bool:
        return self._inner.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._inner.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._inner.get_protocol()


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a `CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))
