"""A TCP proxy in a process of its own whose link a test can cut: a dependency's outage on demand.

Run as `python -m tests.reliability.proxy --target HOST:PORT`; it prints `ready <port>` and then
obeys one command per stdin line, answering each with a line once it took effect:
- `down`: stop listening and close every connection (callers see connection refused / reset,
  like a stopped server);
- `hang`: keep connections open but move no byte (a partition: callers see timeouts);
- `up`: listen and forward again (on the same port);
- `quit`.
A separate process, so forwarding never competes with the test's own event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import select
import subprocess
import sys
import time
from pathlib import Path

_CHUNK = 65_536


def free_port() -> int:
    """A TCP port nobody listens on right now (kept here: the proxy process imports little)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Proxy:
    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port = port
        self.target = target
        self.server: asyncio.Server | None = None
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.links: set[asyncio.StreamWriter] = set()

    async def listen(self) -> None:
        if self.server is None:
            self.server = await asyncio.start_server(
                self._serve, "127.0.0.1", self.port, reuse_address=True
            )
            self.port = self.server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.close()
        for writer in list(self.links):
            writer.transport.abort()  # RST: the peer learns at once
        self.links.clear()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.links.add(writer)
        try:
            await self.flowing.wait()
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(*self.target), 5
                )
            except (OSError, TimeoutError):
                writer.transport.abort()
                return
            self.links.add(up_writer)
            await asyncio.gather(
                self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
            )
            self.links.discard(up_writer)
        finally:
            self.links.discard(writer)
            writer.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()


async def _main(target: tuple[str, int], port: int) -> None:
    proxy = _Proxy(port, target)
    await proxy.listen()
    print(f"ready {proxy.port}", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        command = line.strip()
        if command in ("", "quit"):
            break
        if command == "down":
            proxy.flowing.set()
            await proxy.down()
        elif command == "hang":
            proxy.flowing.clear()
        elif command == "up":
            proxy.flowing.set()
            await proxy.listen()
        print(command, flush=True)
    await proxy.down()


class TcpProxy:
    """The proxy process, driven from a test: `down()`, `hang()`, `up()`, `stop()`."""

    def __init__(self, target_host: str, target_port: int, log_dir: Path, name: str) -> None:
        self.name = name
        self.target = (target_host, target_port)
        self.port = free_port()
        self._log = log_dir / f"proxy-{name}.log"
        self._process: subprocess.Popen[str] | None = None
        self.state = "stopped"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 - fixed argument list
                [
                    sys.executable,
                    "-m",
                    "tests.reliability.proxy",
                    "--target",
                    f"{self.target[0]}:{self.target[1]}",
                    "--port",
                    str(self.port),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                cwd=Path(__file__).resolve().parents[2],
            )
        answer = self._read_line(20.0)
        if not answer.startswith("ready"):
            raise RuntimeError(f"proxy {self.name} did not start: {answer!r}")
        self.state = "up"

    def _command(self, command: str) -> None:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()
        answer = self._read_line(10.0)
        if answer != command:
            raise RuntimeError(f"proxy {self.name}: {command!r} answered {answer!r}")
        self.state = command

    def _read_line(self, timeout: float) -> str:
        assert self._process is not None and self._process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self._process.stdout], [], [], 0.1)
            if ready:
                return self._process.stdout.readline().strip()
            if self._process.poll() is not None:
                break
        raise RuntimeError(f"proxy {self.name} gave no answer ({self._log.read_text()[-500:]})")

    def down(self) -> None:
        """Refuse and reset every connection, as a stopped server does."""
        self._command("down")

    def hang(self) -> None:
        """Hold connections open and move no byte, as a partition does."""
        self._command("hang")

    def up(self) -> None:
        self._command("up")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                assert process.stdin is not None
                process.stdin.write("quit\n")
                process.stdin.flush()
            try:
                process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self.state = "stopped"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--port", type=int, default=0, help="listen port (0: any)")
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")
    asyncio.run(_main((host, int(port)), args.port))


if __name__ == "__main__":
    main()
