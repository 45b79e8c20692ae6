"""`python -m booking_peers payment|theater|eureka --port N`: run one peer service with uvicorn."""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import uvicorn
import uvloop

from booking.entrypoints.server import PROTOCOL
from booking_peers import eureka, payment, theater
from booking_peers.faults import FaultInjector

APPS: dict[str, Callable[[], FaultInjector]] = {
    "payment": payment.create_app,
    "theater": theater.create_app,
    "eureka": eureka.create_app,
}
DEFAULT_PORTS = {"payment": 8084, "theater": 8083, "eureka": 8761}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m booking_peers", description=__doc__)
    parser.add_argument("service", choices=sorted(APPS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="0 picks a free port (see --port-file)")
    parser.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument(
        "--demo-show",
        type=int,
        metavar="SHOW_ID",
        help="theater only: seed this show with 5 rows of 10 seats (ids SHOW_ID*1000+1...)",
    )
    args = parser.parse_args(argv)
    port = DEFAULT_PORTS[args.service] if args.port is None else args.port
    if args.demo_show is not None and args.service != "theater":
        parser.error("--demo-show is for the theater service")
    app = theater.create_app(args.demo_show) if args.service == "theater" else APPS[args.service]()
    # On uvloop, as `booking serve` runs, rather than asyncio's own loop, whose selector and
    # socket transports are Python.
    uvloop.run(_serve(app, args.host, port, args.port_file, args.log_level))


async def _serve(
    app: FaultInjector, host: str, port: int, port_file: Path | None, log_level: str
) -> None:
    # Bind first, so the port is known (and reported) before the first request.
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and without
    # it every answer on a kept-alive connection waits out the client's delayed ACK (~40 ms).
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    # The service's own server protocol (one write per answer, booking.entrypoints.server):
    # where the peers share the machine with the service, as in the benchmark, each answer
    # costs them what it costs the service's server, not a second send.
    config = uvicorn.Config(
        app, log_level=log_level, lifespan="on", timeout_graceful_shutdown=1, http=PROTOCOL
    )
    server = uvicorn.Server(config)
    if port_file is not None:
        temp = port_file.with_suffix(".tmp")
        temp.write_text(str(bound))
        temp.replace(port_file)
    print(f"booking_peers {host}:{bound}", file=sys.stderr, flush=True)
    await server.serve(sockets=[sock])


if __name__ == "__main__":
    main()
