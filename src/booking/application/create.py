"""Create a booking: the saga of the architecture page, with compensation once per step."""

from __future__ import annotations

import logging

from booking.application.errors import SeatConflict
from booking.application.settings import SagaSettings
from booking.application.transitions import Change, Transitions, compensation
from booking.domain.booking import Booking, FailureReason, Seat, validate_seat_ids
from booking.domain.identity import Principal
from booking.ports.clock import Clock, IdGenerator
from booking.ports.errors import (
    DependencyUnavailable,
    DuplicateBookingId,
    PaymentRejected,
    PaymentUnavailable,
    SeatLockUnavailable,
    SeatsAlreadyClaimed,
    SeatsUnavailable,
    TheaterRejected,
    TheaterUnavailable,
)
from booking.ports.faults import FaultPoints, NoFaults, Step
from booking.ports.payment import PaymentGateway
from booking.ports.repository import UnitOfWorkFactory
from booking.ports.seat_lock import SeatLock, hold_owner
from booking.ports.telemetry import Telemetry
from booking.ports.theater import TheaterCatalog

log = logging.getLogger(__name__)

_ID_ATTEMPTS = 3


class CreateBooking:
    """Contract: answers a PENDING booking with its payment session stored, or raises.

    - `InvalidBookingRequest` for a bad seat list, `ShowNotFound` for an unknown show.
    - `SeatConflict` naming the seats when the inventory, a hold or a live claim has them;
      nothing is left behind.
    - `DependencyUnavailable` when a part needed to finish is down; a booking already written
      is committed FAILED with its compensation queued (never rolled back, never PENDING).
    """

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        seat_lock: SeatLock,
        theater: TheaterCatalog,
        payment: PaymentGateway,
        clock: Clock,
        ids: IdGenerator,
        settings: SagaSettings,
        telemetry: Telemetry,
        faults: FaultPoints | None = None,
    ) -> None:
        self._faults = faults or NoFaults()
        self._uow = uow
        self._locks = seat_lock
        self._theater = theater
        self._payment = payment
        self._clock = clock
        self._ids = ids
        self._settings = settings
        self._telemetry = telemetry
        self._transitions = Transitions(uow, clock)

    async def __call__(self, caller: Principal, show_id: int, seat_ids: list[int]) -> Booking:
        seat_ids = validate_seat_ids(seat_ids)
        booking = await self._hold_price_insert(caller, show_id, seat_ids)
        booking_id = booking.booking_id
        self._telemetry.booking_outcome("created")
        self._faults.reached(Step.AFTER_INSERT)

        try:
            await self._theater.lock(show_id, seat_ids, caller)
        except (SeatsUnavailable, TheaterRejected) as exc:
            await self._fail(booking, FailureReason.SEATS_UNAVAILABLE, theater_locked=False)
            taken = getattr(exc, "seat_ids", seat_ids)
            raise SeatConflict(taken, failed_booking_id=booking_id) from exc
        except TheaterUnavailable:
            # The lock may have been taken before the error: release it to be sure.
            await self._fail(booking, FailureReason.THEATER_LOCK_FAILED, theater_locked=True)
            raise
        self._faults.reached(Step.AFTER_THEATER_LOCK)

        try:
            session = await self._payment.create_checkout(booking_id, booking.total, caller)
        except (PaymentRejected, PaymentUnavailable) as exc:
            await self._fail(booking, FailureReason.PAYMENT_INIT_FAILED, theater_locked=True)
            raise DependencyUnavailable(str(exc), dependency="payment") from exc
        self._faults.reached(Step.AFTER_CHECKOUT)

        def attach(b: Booking) -> Change:
            b.attach_payment(session, self._clock.now())
            return Change()

        return await self._transitions.apply(
            booking_id, attach, actor=f"user:{caller.user_id}", known=booking
        )

    async def _hold_price_insert(
        self, caller: Principal, show_id: int, seat_ids: list[int]
    ) -> Booking:
        """Hold, price and record the seats under a fresh booking id.

        The hold comes first: in an on-sale most requests ask for taken seats, and a taken seat
        must cost one round trip to the hold store, before any Theater or database work. A
        colliding id (two replicas drawing the same one) gives its hold back and draws again."""
        seats: list[Seat] | None = None
        for attempt in range(_ID_ATTEMPTS):
            booking_id = self._ids.next_id()
            held = await self._hold(show_id, seat_ids, booking_id)
            self._faults.reached(Step.AFTER_HOLD)
            try:
                if seats is None:
                    seats = await self._priced(caller, show_id, seat_ids)
                return await self._insert(caller, show_id, seats, booking_id)
            except DuplicateBookingId:
                log.warning("booking id %s drawn twice (attempt %s)", booking_id, attempt + 1)
                if held:
                    await self._release_hold(show_id, seat_ids, booking_id)
            except BaseException:
                if held:
                    await self._release_hold(show_id, seat_ids, booking_id)
                raise
        raise DependencyUnavailable("could not draw a free booking id", dependency="database")

    async def _priced(self, caller: Principal, show_id: int, seat_ids: list[int]) -> list[Seat]:
        """The seats with number, type and price from the inventory; all of them or 409."""
        try:
            infos = await self._theater.seats(show_id, seat_ids, caller)
        except SeatsUnavailable as exc:
            self._reject()
            raise SeatConflict(exc.seat_ids) from exc
        return [Seat(i.seat_id, i.seat_number, i.seat_type, i.price) for i in infos]

    async def _hold(self, show_id: int, seat_ids: list[int], booking_id: int) -> bool:
        """Take the fast-filter holds; a taken seat costs this one round trip and no DB work.

        With the hold store down, carry on: the database claim is the arbiter."""
        try:
            outcome = await self._locks.acquire(
                show_id, seat_ids, hold_owner(booking_id), self._settings.seat_hold_ttl
            )
        except SeatLockUnavailable:
            self._telemetry.hold_store_degraded(True)
            log.warning("seat hold store unavailable; relying on the database claim")
            return False
        self._telemetry.hold_store_degraded(False)
        if not outcome.acquired:
            self._telemetry.hold_conflict()
            self._reject()
            raise SeatConflict(outcome.conflicts)
        return True

    async def _insert(
        self, caller: Principal, show_id: int, seats: list[Seat], booking_id: int
    ) -> Booking:
        now = self._clock.now()
        booking = Booking.open(
            booking_id=booking_id,
            user_id=caller.user_id,
            show_id=show_id,
            seats=seats,
            hold_expires_at=now + self._settings.hold_ttl,
            now=now,
        )
        write = self._transitions.written(
            booking, Change(), expected=None, before=None, actor=f"user:{caller.user_id}"
        )
        try:
            await self._uow.write(write)
        except SeatsAlreadyClaimed as exc:
            self._reject()
            raise SeatConflict(exc.seat_ids) from exc
        return booking

    async def _fail(self, booking: Booking, reason: FailureReason, *, theater_locked: bool) -> None:
        def fail(b: Booking) -> Change | None:
            if b.is_terminal:
                return None
            b.fail(reason, self._clock.now())
            return compensation(b, theater_locked=theater_locked)

        await self._transitions.apply(booking.booking_id, fail, actor="saga", known=booking)
        self._telemetry.booking_outcome("failed", reason.value)

    async def _release_hold(self, show_id: int, seat_ids: list[int], booking_id: int) -> None:
        try:
            await self._locks.release(show_id, seat_ids, hold_owner(booking_id))
        except SeatLockUnavailable:
            log.warning("could not release hold of booking %s; it expires by itself", booking_id)

    def _reject(self) -> None:
        self._telemetry.booking_outcome("rejected", "SEATS_UNAVAILABLE")
