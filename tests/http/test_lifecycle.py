"""The whole booking lifecycle through the HTTP API on memory adapters."""

from __future__ import annotations

from booking.adapters.sandbox.theater import SeatStatus
from booking.domain.booking import PaymentStatus

from .conftest import BASE, HOLD, SHOW, Api, auth, problem


async def test_create_answers_the_contract_shape(api: Api) -> None:
    """201 with Location, the contract's create fields, holdExpiresAt and rupee amounts."""
    response = await api.create([1, 2])
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"{BASE}/{body['bookingId']}"
    for member in (
        "bookingId",
        "userId",
        "showId",
        "totalAmount",
        "status",
        "seats",
        "paymentSessionId",
        "paymentUrl",
        "paymentExpiresAt",
        "holdExpiresAt",
    ):
        assert member in body, member
    assert isinstance(body["bookingId"], int)
    assert body["userId"] == 7
    assert body["showId"] == SHOW
    assert body["status"] == "PENDING"
    assert body["totalAmount"] == 300.0
    assert body["seats"] == [
        {
            "bookingSeatId": 1,
            "seatId": 1,
            "seatNumber": "1-1",
            "seatType": "SILVER",
            "price": 150.0,
        },
        {
            "bookingSeatId": 2,
            "seatId": 2,
            "seatNumber": "1-2",
            "seatType": "SILVER",
            "price": 150.0,
        },
    ]
    assert body["paymentUrl"].startswith("http://testserver.local/sandbox/checkout/cs_sandbox_")
    assert isinstance(body["paymentExpiresAt"], int)
    assert body["holdExpiresAt"] == "2026-01-01T12:05:00Z"


async def test_pay_then_verify_confirms_and_announces(api: Api) -> None:
    """Paid checkout → verify-payment answers CONFIRMED; the relay books the seats and
    publishes exactly one booking_success with the Notification Service's header."""
    created = await api.booked([13, 14])
    booking_id, session = created["bookingId"], created["paymentSessionId"]

    pending = await api.client.get(f"{BASE}/{booking_id}/verify-payment", headers=auth())
    assert pending.status_code == 200
    assert pending.json()["status"] == "PENDING"

    api.settle(session, PaymentStatus.COMPLETED)
    verified = await api.client.get(
        f"{BASE}/{booking_id}/verify-payment", params={"sessionId": session}, headers=auth()
    )
    assert verified.status_code == 200
    assert verified.json()["status"] == "CONFIRMED"
    assert {"bookingId", "userId", "showId", "totalAmount", "status", "seats"} <= set(
        verified.json()
    )

    await api.relay()
    assert api.world.theater.status(SHOW, 13) is SeatStatus.BOOKED
    success = [m for m in api.world.publisher.published if m.name == "booking_success"]
    assert len(success) == 1
    assert success[0].payload["bookingId"] == booking_id
    assert success[0].headers["__TypeId__"].endswith("BookingSuccessEvent")

    again = await api.client.get(f"{BASE}/{booking_id}", headers=auth())
    assert again.json()["status"] == "CONFIRMED"


async def test_declined_payment_is_402_and_releases_the_seats(api: Api) -> None:
    """A FAILED payment: verify-payment answers 402 PAYMENT_FAILED; seats become free again."""
    created = await api.booked([20])
    api.settle(created["paymentSessionId"], PaymentStatus.FAILED)
    response = await api.client.get(f"{BASE}/{created['bookingId']}/verify-payment", headers=auth())
    problem(response, 402, "PAYMENT_FAILED")
    await api.relay()
    assert api.world.theater.status(SHOW, 20) is SeatStatus.AVAILABLE
    booking = (await api.client.get(f"{BASE}/{created['bookingId']}", headers=auth())).json()
    assert booking["status"] == "FAILED"
    assert booking["failureReason"] == "PAYMENT_FAILED"
    assert (await api.create([20], user_id=8)).status_code == 201


async def test_cancel_releases_and_second_cancel_is_409(api: Api) -> None:
    """The owner cancels a PENDING booking (200, CANCELLED); a second cancel is 409."""
    created = await api.booked([30, 31])
    url = f"{BASE}/{created['bookingId']}/cancel"
    response = await api.client.post(url, headers=auth())
    assert response.status_code == 200
    assert response.json()["status"] == "CANCELLED"
    await api.relay()
    assert api.world.theater.status(SHOW, 30) is SeatStatus.AVAILABLE
    body = problem(await api.client.post(url, headers=auth()), 409, "ILLEGAL_TRANSITION")
    assert body["currentStatus"] == "CANCELLED"


async def test_confirmed_booking_cannot_be_cancelled(api: Api) -> None:
    """Cancel of a CONFIRMED booking is 409 and changes nothing."""
    created = await api.booked([40])
    api.settle(created["paymentSessionId"], PaymentStatus.COMPLETED)
    await api.client.get(f"{BASE}/{created['bookingId']}/verify-payment", headers=auth())
    response = await api.client.post(f"{BASE}/{created['bookingId']}/cancel", headers=auth())
    problem(response, 409, "ILLEGAL_TRANSITION")
    assert api.world.booking(created["bookingId"]).status.value == "CONFIRMED"


async def test_unpaid_hold_expires_through_the_reconciler(api: Api) -> None:
    """Past the hold, the reconciler fails the booking HOLD_EXPIRED and the seats come back."""
    created = await api.booked([50])
    api.world.clock.advance(HOLD * 2)
    await api.reconcile()
    await api.relay()
    booking = (await api.client.get(f"{BASE}/{created['bookingId']}", headers=auth())).json()
    assert booking["status"] == "FAILED"
    assert booking["failureReason"] == "HOLD_EXPIRED"
    assert api.world.theater.status(SHOW, 50) is SeatStatus.AVAILABLE


async def test_seats_endpoint_for_owner_and_service_account(api: Api) -> None:
    """Owner and service account read the ticket data; another user gets 404."""
    created = await api.booked([61, 62])
    url = f"{BASE}/{created['bookingId']}/seats"
    expected = [
        {"seatId": 61, "seatNumber": "6-1", "seatType": "GOLD", "price": 250.0},
        {"seatId": 62, "seatNumber": "6-2", "seatType": "GOLD", "price": 250.0},
    ]
    assert (await api.client.get(url, headers=auth())).json() == expected
    service = auth(99, ("ROLE_SERVICE_ACCOUNT",))
    response = await api.client.get(url, headers=service)
    assert response.status_code == 200
    assert response.json() == expected
    problem(await api.client.get(url, headers=auth(8)), 404, "BOOKING_NOT_FOUND")


async def test_list_pages_newest_first_with_status_filter(api: Api) -> None:
    """The caller's own bookings only, newest first, in pages joined by an opaque cursor."""
    ids = []
    for seat in (71, 72, 73):
        ids.append((await api.booked([seat]))["bookingId"])
        api.world.clock.advance(HOLD / 100)
    await api.booked([74], user_id=8)
    await api.client.post(f"{BASE}/{ids[0]}/cancel", headers=auth())

    first = await api.client.get(BASE, params={"limit": 2}, headers=auth())
    assert first.status_code == 200
    page = first.json()
    assert [b["bookingId"] for b in page["items"]] == [ids[2], ids[1]]
    assert isinstance(page["nextCursor"], str)
    second = await api.client.get(
        BASE, params={"limit": 2, "cursor": page["nextCursor"]}, headers=auth()
    )
    assert [b["bookingId"] for b in second.json()["items"]] == [ids[0]]
    assert second.json()["nextCursor"] is None

    cancelled = await api.client.get(BASE, params={"status": "CANCELLED"}, headers=auth())
    assert [b["bookingId"] for b in cancelled.json()["items"]] == [ids[0]]
