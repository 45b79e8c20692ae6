"""A faithful stand-in of the platform's Theater Service (show-seat inventory).

Wire behaviour (contracts section 3): verify answers 200 when every asked seat is AVAILABLE,
206 with only the available subset, 204 with no body when none is (an unknown show included);
lock and book are all-or-nothing and answer 500 otherwise, and book is not idempotent (a repeat
is a 500); release takes `showSeatIds` and silently accepts partial releases. Public reads:
`GET /api/v1/shows/{id}` and `GET /api/v1/shows/{id}/seats` (404 when the show has no seats).
Internal calls need the service role in X-User-Roles and a numeric X-User-Id (else 403).

Control endpoints for tests (under `/__control`): seed a show, read it, set a seat's status,
reset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar, Request, Response, get, post
from litestar.handlers import HTTPRouteHandler

from booking_peers.common import (
    as_long,
    as_long_list,
    identity_problem,
    json_body,
    json_response,
    spring_error,
)
from booking_peers.faults import FaultInjector

SEATS = "/api/v1/shows/internal/seats"
STATUSES = frozenset({"AVAILABLE", "LOCKED", "BOOKED"})
SEAT_TYPES = frozenset({"SILVER", "GOLD", "PLATINUM"})


@dataclass(slots=True)
class ShowSeat:
    seat_id: int
    seat_number: str
    seat_type: str
    price: float
    status: str = "AVAILABLE"

    def valid_seat(self) -> dict[str, Any]:
        return {
            "seatId": self.seat_id,
            "seatNumber": self.seat_number,
            "seatType": self.seat_type,
            "seatPrice": self.price,
        }

    def show_seat(self) -> dict[str, Any]:
        return {
            "showSeatId": self.seat_id,
            "seatNumber": self.seat_number,
            "seatType": self.seat_type,
            "price": self.price,
            "status": self.status,
        }


@dataclass(slots=True)
class Show:
    show_id: int
    movie_title: str = "A Test Movie"
    theater_name: str = "Test Theater"
    screen_name: str = "Screen 1"
    start_time: str = "2030-01-01T18:00:00"
    end_time: str = "2030-01-01T21:00:00"
    seats: dict[int, ShowSeat] = field(default_factory=dict)

    def details(self) -> dict[str, Any]:
        return {
            "showId": self.show_id,
            "startTime": self.start_time,
            "endTime": self.end_time,
            "movieId": f"movie-{self.show_id}",
            "movieTitle": self.movie_title,
            "movieBannerUrl": None,
            "theaterName": self.theater_name,
            "theaterAddress": "1 Test Street",
            "screenName": self.screen_name,
        }


@dataclass(slots=True)
class TheaterState:
    shows: dict[int, Show] = field(default_factory=dict)

    def reset(self) -> None:
        self.shows.clear()

    def seed(self, data: dict[str, Any]) -> Show:
        """A show from `{"showId", "seats": [{"seatId", "seatNumber", "seatType", "price",
        "status"}]}` or from `{"showId", "rows", "columns", "firstSeatId", "price"}`."""
        show_id = int(data["showId"])
        show = Show(show_id=show_id, movie_title=str(data.get("movieTitle", "A Test Movie")))
        if "seats" in data:
            for item in data["seats"]:
                seat = ShowSeat(
                    seat_id=int(item["seatId"]),
                    seat_number=str(item.get("seatNumber", item["seatId"])),
                    seat_type=str(item.get("seatType", "SILVER")).upper(),
                    price=float(item.get("price", 250.0)),
                    status=str(item.get("status", "AVAILABLE")).upper(),
                )
                show.seats[seat.seat_id] = seat
        else:
            seat_id = int(data.get("firstSeatId", show_id * 1000 + 1))
            types = ["SILVER", "GOLD", "PLATINUM"]
            for row in range(1, int(data.get("rows", 3)) + 1):
                for column in range(1, int(data.get("columns", 5)) + 1):
                    seat_type = types[min(row - 1, 2)]
                    price = float(data.get("price", 150.0)) + 100.0 * types.index(seat_type)
                    show.seats[seat_id] = ShowSeat(seat_id, f"{row}-{column}", seat_type, price)
                    seat_id += 1
        for seat in show.seats.values():
            if seat.status not in STATUSES or seat.seat_type not in SEAT_TYPES:
                raise ValueError(f"bad seat {seat}")
        self.shows[show_id] = show
        return show

    def found(self, show_id: int, seat_ids: list[int]) -> list[ShowSeat]:
        show = self.shows.get(show_id)
        if show is None:
            return []
        return [show.seats[s] for s in seat_ids if s in show.seats]

    def move(self, show_id: int, seat_ids: list[int], source: str, target: str) -> bool:
        """All or nothing source → target; False (and nothing changed) otherwise."""
        seats = self.found(show_id, seat_ids)
        if len(seats) != len(set(seat_ids)) or any(s.status != source for s in seats):
            return False
        for seat in seats:
            seat.status = target
        return True


def _refuse(request: Request[Any, Any, Any]) -> Response[Any] | None:
    if identity_problem(request) is not None:
        return spring_error(403, "Forbidden", request.url.path)
    return None


async def _seat_request(
    request: Request[Any, Any, Any], field_name: str
) -> tuple[int, list[int]] | Response[Any]:
    body = await json_body(request)
    show_id = as_long(body.get("showId")) if isinstance(body, dict) else None
    seat_ids = as_long_list(body.get(field_name)) if isinstance(body, dict) else None
    if show_id is None or not seat_ids:
        return spring_error(400, "Bad Request", request.url.path)
    return show_id, seat_ids


def build_routes(state: TheaterState) -> list[HTTPRouteHandler]:
    @post(f"{SEATS}/verify", status_code=200)
    async def verify(request: Request[Any, Any, Any]) -> Response[Any]:
        if (refusal := _refuse(request)) is not None:
            return refusal
        parsed = await _seat_request(request, "seatIds")
        if isinstance(parsed, Response):
            return parsed
        show_id, seat_ids = parsed
        available = [s for s in state.found(show_id, seat_ids) if s.status == "AVAILABLE"]
        if not available:
            return json_response(204)
        status = 200 if len(available) == len(seat_ids) else 206
        return json_response(status, [s.valid_seat() for s in available])

    async def _move(
        request: Request[Any, Any, Any], field_name: str, source: str, target: str
    ) -> Response[Any]:
        if (refusal := _refuse(request)) is not None:
            return refusal
        parsed = await _seat_request(request, field_name)
        if isinstance(parsed, Response):
            return parsed
        show_id, seat_ids = parsed
        if not state.move(show_id, seat_ids, source, target):
            return spring_error(500, "Internal Server Error", request.url.path)
        return json_response(200, [s.valid_seat() for s in state.found(show_id, seat_ids)])

    @post(f"{SEATS}/lock", status_code=200)
    async def lock(request: Request[Any, Any, Any]) -> Response[Any]:
        return await _move(request, "seatIds", "AVAILABLE", "LOCKED")

    @post(f"{SEATS}/book", status_code=200)
    async def book(request: Request[Any, Any, Any]) -> Response[Any]:
        return await _move(request, "seatIds", "LOCKED", "BOOKED")

    @post(f"{SEATS}/release", status_code=200)
    async def release(request: Request[Any, Any, Any]) -> Response[Any]:
        if (refusal := _refuse(request)) is not None:
            return refusal
        parsed = await _seat_request(request, "showSeatIds")
        if isinstance(parsed, Response):
            return parsed
        show_id, seat_ids = parsed
        seats = state.found(show_id, seat_ids)
        for seat in seats:
            if seat.status == "LOCKED":  # partial releases are silently accepted
                seat.status = "AVAILABLE"
        return json_response(200, [s.valid_seat() for s in seats])

    @get("/api/v1/shows/{show_id:int}")
    async def show_details(request: Request[Any, Any, Any], show_id: int) -> Response[Any]:
        show = state.shows.get(show_id)
        if show is None:
            return spring_error(404, "Not Found", request.url.path)
        return json_response(200, show.details())

    @get("/api/v1/shows/{show_id:int}/seats")
    async def show_seats(show_id: int) -> Response[Any]:
        show = state.shows.get(show_id)
        if show is None or not show.seats:
            return json_response(404)
        return json_response(200, [s.show_seat() for s in show.seats.values()])

    @get("/actuator/health")
    async def health() -> Response[Any]:
        return json_response(200, {"status": "UP"})

    @post("/__control/shows", status_code=201)
    async def seed(request: Request[Any, Any, Any]) -> Response[Any]:
        body = await json_body(request)
        try:
            show = state.seed(body)
        except (KeyError, TypeError, ValueError) as exc:
            return json_response(400, {"error": str(exc)})
        return json_response(201, [s.show_seat() for s in show.seats.values()])

    @get("/__control/shows/{show_id:int}")
    async def read_show(show_id: int) -> Response[Any]:
        show = state.shows.get(show_id)
        if show is None:
            return json_response(404, {"error": "unknown show"})
        return json_response(200, [s.show_seat() for s in show.seats.values()])

    @post("/__control/shows/{show_id:int}/seats/{seat_id:int}", status_code=200)
    async def set_status(
        request: Request[Any, Any, Any], show_id: int, seat_id: int
    ) -> Response[Any]:
        body = await json_body(request) or {}
        show = state.shows.get(show_id)
        status = str(body.get("status", "")).upper()
        if show is None or seat_id not in show.seats or status not in STATUSES:
            return json_response(400, {"error": "unknown show, seat or status"})
        show.seats[seat_id].status = status
        return json_response(200, show.seats[seat_id].show_seat())

    @post("/__control/reset", status_code=200)
    async def reset() -> Response[Any]:
        state.reset()
        return json_response(200, {"reset": True})

    return [
        verify,
        lock,
        book,
        release,
        show_details,
        show_seats,
        health,
        seed,
        read_show,
        set_status,
        reset,
    ]


def create_app(demo_show: int | None = None) -> FaultInjector:
    """The Theater Service as an ASGI app, wrapped with switchable faults.

    With `demo_show`, that show starts with 5 rows of 10 AVAILABLE seats.
    """
    state = TheaterState()
    if demo_show is not None:
        state.seed({"showId": demo_show, "rows": 5, "columns": 10})
    app = Litestar(route_handlers=build_routes(state), openapi_config=None)
    app.state.theater = state
    return FaultInjector(app)
