"""The PaymentGateway contract, run on the sandbox checkout and on the HTTP adapter against the
Payment Service peer."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from booking.adapters.http.payment import HttpPaymentGateway
from booking.adapters.sandbox.payment import SandboxPaymentGateway
from booking.adapters.system import SystemClock
from booking.domain.booking import PaymentStatus
from booking.domain.identity import Principal
from booking.domain.money import Money
from booking.ports.payment import PaymentGateway

CALLER = Principal.of(7, "7_user", ["ROLE_USER"])
_bookings = itertools.count(random.randrange(10**9, 2 * 10**9))


@dataclass
class Backend:
    gateway: PaymentGateway
    pay: Callable[[str], object]
    end: Callable[[str], object]  # the checkout ends for good without payment


@pytest.fixture(params=["sandbox", "http"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "sandbox":
        sandbox = SandboxPaymentGateway(SystemClock())
        yield Backend(
            sandbox,
            lambda s: sandbox.settle(s, PaymentStatus.COMPLETED),
            lambda s: sandbox.settle(s, PaymentStatus.FAILED),
        )
        return
    peer = request.getfixturevalue("payment_service")
    http = HttpPaymentGateway(base_url=peer.url, timeout=5.0)
    yield Backend(http, peer.pay, peer.expire)
    await http.aclose()


async def test_a_checkout_is_pending_until_paid(backend: Backend) -> None:
    """A new checkout has a session, a URL and an expiry, and verifies PENDING for its booking
    and amount; once paid it verifies COMPLETED."""
    booking_id = next(_bookings)
    session = await backend.gateway.create_checkout(booking_id, Money(500_00), CALLER)
    assert session.session_id
    assert session.url.startswith("http")
    assert session.expires_at is not None
    pending = await backend.gateway.verify(session.session_id, CALLER)
    assert (pending.status, pending.booking_id) == (PaymentStatus.PENDING, booking_id)
    backend.pay(session.session_id)
    paid = await backend.gateway.verify(session.session_id, CALLER)
    assert paid.status is PaymentStatus.COMPLETED
    assert (paid.booking_id, paid.amount, paid.session_id) == (
        booking_id,
        Money(500_00),
        session.session_id,
    )


async def test_an_ended_checkout_is_failed(backend: Backend) -> None:
    """A checkout that ended without payment verifies FAILED (definitive)."""
    session = await backend.gateway.create_checkout(next(_bookings), Money(250_00), CALLER)
    backend.end(session.session_id)
    assert (await backend.gateway.verify(session.session_id, CALLER)).status is PaymentStatus.FAILED


async def test_an_unknown_session_is_unknown_never_failed(backend: Backend) -> None:
    """No definitive answer for a session the payment side does not know."""
    result = await backend.gateway.verify("cs_never_created", CALLER)
    assert result.status is PaymentStatus.UNKNOWN


async def test_each_create_opens_its_own_checkout(backend: Backend) -> None:
    """Two creates are two sessions: the gateway never reuses or retries one by itself."""
    booking_id = next(_bookings)
    first = await backend.gateway.create_checkout(booking_id, Money(100_00), CALLER)
    second = await backend.gateway.create_checkout(booking_id, Money(100_00), CALLER)
    assert first.session_id != second.session_id
