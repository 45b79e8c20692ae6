"""The cost floor of one request: a Litestar app that parses and answers as the service does."""

from __future__ import annotations

import itertools
from typing import Annotated

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.params import Body

BASE = "/api/v1/bookings"


class CreateRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    show_id: Annotated[int, msgspec.Meta(gt=0)]
    seat_ids: Annotated[list[Annotated[int, msgspec.Meta(gt=0)]], msgspec.Meta(min_length=1)]


class SeatView(msgspec.Struct, rename="camel"):
    booking_seat_id: int
    seat_id: int
    seat_number: str
    seat_type: str
    price: float


class BookingView(msgspec.Struct, rename="camel"):
    booking_id: int
    user_id: int
    show_id: int
    total_amount: float
    status: str
    seats: list[SeatView]
    payment_session_id: str | None
    payment_url: str | None
    hold_expires_at: str


_ids = itertools.count(1)


def _view(booking_id: int, user_id: int, show_id: int, seat_ids: list[int]) -> BookingView:
    seats = [SeatView(s, s, f"A-{s}", "SILVER", 150.0) for s in seat_ids]
    return BookingView(
        booking_id=booking_id,
        user_id=user_id,
        show_id=show_id,
        total_amount=150.0 * len(seats),
        status="PENDING",
        seats=seats,
        payment_session_id="cs_bench_0000000000000000",
        payment_url="http://127.0.0.1/checkout/cs_bench_0000000000000000",
        hold_expires_at="2030-01-01T18:05:00Z",
    )


def _user(request: Request[object, object, object]) -> int:
    # Read the gateway identity header, as the service does on every call.
    return int(request.headers.get("x-user-id", "1"))


@post(BASE, status_code=201)
async def create(
    request: Request[object, object, object], data: Annotated[CreateRequest, Body()]
) -> Response[bytes]:
    view = _view(next(_ids), _user(request), data.show_id, data.seat_ids)
    return Response(
        content=msgspec.json.encode(view),
        status_code=201,
        media_type="application/json",
        headers={"Location": f"{BASE}/{view.booking_id}"},
    )


@get(BASE + "/{booking_id:int}")
async def read(request: Request[object, object, object], booking_id: int) -> Response[bytes]:
    view = _view(booking_id, _user(request), 1, [1, 2])
    return Response(content=msgspec.json.encode(view), media_type="application/json")


def create_app() -> Litestar:
    """`uvicorn --factory bench.bare:create_app`."""
    return Litestar(route_handlers=[create, read], openapi_config=None, debug=False)


def main() -> None:
    """`python -m bench.bare --port N --workers W`: uvicorn with the settings of `booking serve`."""
    import argparse

    import uvicorn

    from booking.entrypoints.server import protocol_for
    from booking.entrypoints.settings import load_settings

    parser = argparse.ArgumentParser(prog="python -m bench.bare")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    uvicorn.run(
        "bench.bare:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        # The service's protocol, as `booking serve` picks it (BOOKING_HTTP_ONE_WRITE).
        http=protocol_for(load_settings().http_one_write),
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
        # uvicorn kills a worker whose startup takes longer (default 5 s): on a loaded 2-core
        # machine the import alone can, and the workers are then restarted forever.
        timeout_worker_healthcheck=60,
        server_header=False,
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()
