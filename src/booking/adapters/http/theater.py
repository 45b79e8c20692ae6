"""HttpTheaterCatalog: the Theater Service's seat inventory (verify, lock, book, release)."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import msgspec
import structlog

from booking.adapters.http._common import (
    DEFAULT_SERVICE_ROLE,
    GATEWAY_ERRORS,
    SERVER_ERRORS,
    PeerAdapter,
    RetryPolicy,
    TransientStatus,
    encode_json,
    identity_headers,
    send_retrying,
)
from booking.domain.booking import SeatType
from booking.domain.errors import InvalidMoney
from booking.domain.identity import Principal
from booking.domain.money import Money
from booking.ports.directory import ServiceDirectory
from booking.ports.errors import (
    DependencyUnavailable,
    SeatsUnavailable,
    ShowNotFound,
    TheaterRejected,
    TheaterUnavailable,
)
from booking.ports.theater import SeatInfo

log = structlog.get_logger(__name__)

SERVICE_NAME = "theater-service"
SEATS_PATH = "/api/v1/shows/internal/seats"
HEALTH_PATH = "/actuator/health"
AVAILABLE, LOCKED, BOOKED = "AVAILABLE", "LOCKED", "BOOKED"
# A book that finds some seats booked and others still locked books the rest, at most this often.
_BOOK_ROUNDS = 2


class _ValidSeat(msgspec.Struct, rename="camel"):
    seat_id: int
    seat_number: str
    seat_type: str
    seat_price: float


class _ShowSeat(msgspec.Struct, rename="camel"):
    show_seat_id: int
    status: str


# Decoders made once: given a type per call, msgspec works out how to decode it every time.
_valid_seats = msgspec.json.Decoder(list[_ValidSeat]).decode
_show_seats = msgspec.json.Decoder(list[_ShowSeat]).decode


class HttpTheaterCatalog(PeerAdapter):
    """TheaterCatalog over the Theater Service's internal seat API (contracts section 3).

    - `seats` (verify; a read, retried on transient errors): 200 with every asked seat answers
      them in the asked order; 206 or a short 200 raises `SeatsUnavailable` naming the missing
      seats (never a subset); 204 raises `SeatsUnavailable` naming all, or `ShowNotFound` when
      the show itself is unknown (one `GET /api/v1/shows/{id}` tells them apart).
    - `lock` is not idempotent: it is repeated only when the connection was never made. Their
      500 means "not all AVAILABLE": the seat map names the taken seats (`SeatsUnavailable`);
      a 500 on seats that are all still AVAILABLE is a server fault (`TheaterUnavailable`).
    - `book` is not idempotent on their side (a repeat answers 500). It is retried on transient
      errors; after a 500 or exhausted retries the seat map decides: all BOOKED is done, seats
      still LOCKED beside BOOKED ones are booked in one more round, an AVAILABLE or unknown seat
      is `TheaterRejected` (the lock was lost).
    - `release` sends `showSeatIds`, is idempotent and retried on transient errors.
    - A timeout or connection error that is not recovered raises `TheaterUnavailable`.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        directory: ServiceDirectory | None = None,
        service: str = SERVICE_NAME,
        client: httpx.AsyncClient | None = None,
        timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        service_role: str = DEFAULT_SERVICE_ROLE,
    ) -> None:
        super().__init__(
            service=service,
            base_url=base_url,
            directory=directory,
            client=client,
            timeout=timeout,
            service_role=service_role,
        )
        self._retry = retry if retry is not None else RetryPolicy()

    async def seats(
        self, show_id: int, seat_ids: Sequence[int], caller: Principal
    ) -> list[SeatInfo]:
        asked = list(seat_ids)
        headers = identity_headers(caller, self._service_role)
        response = await self._send(
            "POST", f"{SEATS_PATH}/verify", headers, {"showId": show_id, "seatIds": asked}
        )
        status = response.status_code
        if status == 404:
            raise ShowNotFound(show_id)
        if status == 204:
            await self._require_show(show_id, headers)
            raise SeatsUnavailable(asked)
        if status not in (200, 206):
            raise TheaterRejected(f"theater answered {status} to a seat verify")
        try:
            answered = _valid_seats(response.content)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise TheaterRejected("unreadable seat list from the theater service") from exc
        found = {seat.seat_id: seat for seat in answered}
        missing = [seat_id for seat_id in asked if seat_id not in found]
        if missing:
            log.info("theater.verify.partial", show_id=show_id, http_status=status, missing=missing)
            raise SeatsUnavailable(missing)
        try:
            return [_seat_info(found[seat_id]) for seat_id in asked]
        except (ValueError, InvalidMoney) as exc:
            raise TheaterRejected("theater answered a seat with an unknown type or price") from exc

    async def lock(self, show_id: int, seat_ids: Sequence[int], caller: Principal) -> None:
        asked = list(seat_ids)
        headers = identity_headers(caller, self._service_role)
        body = {"showId": show_id, "seatIds": asked}
        url = await self._url(f"{SEATS_PATH}/lock")
        try:
            # Only a connection that was never made is safe to repeat: a lock that reached
            # them and is repeated answers 500, since the seats are LOCKED by then.
            response = await send_retrying(
                self._client,
                "POST",
                url,
                headers=headers,
                request_timeout=self._timeout,
                policy=self._retry,
                json=encode_json(body),
                transient_statuses=(),
                on=(httpx.ConnectError, httpx.ConnectTimeout),
            )
        except httpx.HTTPError as exc:
            log.warning("theater.lock.unknown_outcome", show_id=show_id, error=repr(exc))
            raise TheaterUnavailable(f"lock of show {show_id} has an unknown outcome") from exc
        if response.is_success:
            return
        if response.status_code == 500:
            states = await self._seat_states(show_id, headers)
            if states is None:
                raise SeatsUnavailable(asked)
            taken = [seat_id for seat_id in asked if states.get(seat_id) != AVAILABLE]
            if taken:
                raise SeatsUnavailable(taken)
            raise TheaterUnavailable("theater answered 500 to a lock of available seats")
        if response.status_code > 500:
            raise TheaterUnavailable(f"theater answered {response.status_code} to a lock")
        raise TheaterRejected(f"theater refused the lock: {response.status_code}")

    async def book(self, show_id: int, seat_ids: Sequence[int], caller: Principal) -> None:
        headers = identity_headers(caller, self._service_role)
        pending = list(seat_ids)
        for _ in range(_BOOK_ROUNDS):
            try:
                response = await self._send(
                    "POST",
                    f"{SEATS_PATH}/book",
                    headers,
                    {"showId": show_id, "seatIds": pending},
                    transient_statuses=GATEWAY_ERRORS,
                )
            except TheaterUnavailable:
                # A retried book may have gone through before the connection failed.
                states = await self._seat_states(show_id, headers)
                if states is not None and all(states.get(s) == BOOKED for s in pending):
                    return
                raise
            if response.is_success:
                return
            states = await self._seat_states(show_id, headers)
            if states is None:
                raise TheaterUnavailable(f"book answered {response.status_code}; seats unreadable")
            lost = [s for s in pending if states.get(s) not in (LOCKED, BOOKED)]
            if lost:
                raise TheaterRejected(f"book refused: seats {lost} of show {show_id} are not held")
            still_locked = [s for s in pending if states.get(s) == LOCKED]
            if not still_locked:
                log.info("theater.book.already_booked", show_id=show_id, seat_ids=pending)
                return
            if len(still_locked) == len(pending):
                raise TheaterUnavailable(f"theater answered {response.status_code} to a book")
            pending = still_locked
        raise TheaterUnavailable(f"seats {pending} of show {show_id} are still not booked")

    async def release(self, show_id: int, seat_ids: Sequence[int], caller: Principal) -> None:
        headers = identity_headers(caller, self._service_role)
        response = await self._send(
            "POST",
            f"{SEATS_PATH}/release",
            headers,
            {"showId": show_id, "showSeatIds": list(seat_ids)},
        )
        if not response.is_success:
            raise TheaterRejected(f"theater refused the release: {response.status_code}")

    async def ping(self) -> None:
        try:
            response = await self._client.get(await self._url(HEALTH_PATH), timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise TheaterUnavailable("theater service unreachable") from exc
        if not response.is_success:
            raise TheaterUnavailable(f"theater service health answered {response.status_code}")

    async def _send(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: object = None,
        *,
        transient_statuses: frozenset[int] = SERVER_ERRORS,
    ) -> httpx.Response:
        """An idempotent call, retried; exhausted transient failures are TheaterUnavailable."""
        url = await self._url(path)
        try:
            return await send_retrying(
                self._client,
                method,
                url,
                headers=headers,
                request_timeout=self._timeout,
                policy=self._retry,
                json=None if body is None else encode_json(body),
                transient_statuses=transient_statuses,
            )
        except (httpx.HTTPError, TransientStatus) as exc:
            log.warning("theater.unavailable", path=path, error=repr(exc))
            raise TheaterUnavailable(f"theater service failed on {path}") from exc

    async def _require_show(self, show_id: int, headers: dict[str, str]) -> None:
        """Raise ShowNotFound when the Theater Service does not know the show."""
        try:
            response = await self._send("GET", f"/api/v1/shows/{show_id}", headers)
        except TheaterUnavailable:
            return
        if response.status_code == 404:
            raise ShowNotFound(show_id)

    async def _seat_states(self, show_id: int, headers: dict[str, str]) -> dict[int, str] | None:
        """The status of every show-seat of the show (public seat map); None if unreadable."""
        try:
            response = await self._send("GET", f"/api/v1/shows/{show_id}/seats", headers)
        except TheaterUnavailable:
            return None
        if response.status_code == 404:
            return {}
        if not response.is_success:
            return None
        try:
            seats = _show_seats(response.content)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        return {seat.show_seat_id: seat.status.upper() for seat in seats}

    async def _url(self, path: str) -> str:
        try:
            return await self._address.url(path)
        except DependencyUnavailable as exc:
            raise TheaterUnavailable(f"{self._address.service} cannot be resolved") from exc


def _seat_info(seat: _ValidSeat) -> SeatInfo:
    return SeatInfo(
        seat_id=seat.seat_id,
        seat_number=seat.seat_number,
        seat_type=SeatType(seat.seat_type.upper()),
        price=Money.from_major(seat.seat_price),
    )
