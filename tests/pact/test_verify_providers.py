"""Provider verification (runs after the consumer pacts are written): the peers honour them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import pytest

from pact import Verifier
from tests.pact._support import PAYMENT, THEATER, pact_file
from tests.support.peers import PaymentPeer, TheaterPeer

ERROR_BODY = {
    "paymentId": None,
    "bookingId": None,
    "paymentStatus": "ERROR",
    "transactionId": None,
    "amount": None,
    "message": "An unexpected error occurred. Please try again later.",
}


# Servers of their own: provider states reset everything, which must not disturb the peers
# other tests share for the session.
@pytest.fixture(scope="module")
def payment_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaymentPeer]:
    peer = PaymentPeer(tmp_path_factory.mktemp("payment-provider"))
    peer.start()
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def theater_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TheaterPeer]:
    peer = TheaterPeer(tmp_path_factory.mktemp("theater-provider"))
    peer.start()
    yield peer
    peer.stop()


def payment_states(peer: PaymentPeer) -> Any:
    def handle(
        state: str, action: Literal["setup", "teardown"], parameters: dict[str, Any] | None
    ) -> None:
        params = parameters or {}
        if action == "teardown":
            peer.reset()
        elif state == "a checkout session exists":
            peer.seed_session(
                int(params["bookingId"]),
                float(params["amount"]),
                session_id=str(params["sessionId"]),
                state=str(params.get("state", "unpaid")),
            )
        elif state == "the card gateway fails transiently":
            peer.gateway_errors(1)
        elif state == "the payment service fails unexpectedly":
            peer.add_fault("status", "/checkout/", status=500, body=ERROR_BODY)
        elif state in ("the card gateway is working", "no checkout session exists", ""):
            pass
        else:
            raise ValueError(f"unknown provider state {state!r}")

    return handle


def theater_states(peer: TheaterPeer) -> Any:
    def handle(
        state: str, action: Literal["setup", "teardown"], parameters: dict[str, Any] | None
    ) -> None:
        params = parameters or {}
        if action == "teardown":
            peer.reset()
        elif state == "a show with seats":
            peer.seed_show(int(params["showId"]), list(params["seats"]))
        elif state in ("no show exists", ""):
            pass
        else:
            raise ValueError(f"unknown provider state {state!r}")

    return handle


def verify(provider: str, url: str, handler: Any) -> None:
    source = pact_file(provider)
    assert source.exists(), f"{source} is missing: run the consumer pact tests to write it"
    verifier = (
        Verifier(provider, host="127.0.0.1")
        .add_transport(url=url)
        .add_source(source)
        .state_handler(handler, teardown=True)
    )
    try:
        verifier.verify()
    except Exception as exc:  # the FFI raises a bare error; show the verifier's own report
        pytest.fail(
            f"{provider} does not honour its pact:\n{verifier.output(strip_ansi=True)}\n{exc}"
        )
    results = verifier.results
    assert results.get("result") is True, verifier.output(strip_ansi=True)


def test_payment_peer_honours_the_pact(payment_provider: PaymentPeer) -> None:
    """Every interaction of booking-service → payment-service passes against the peer server."""
    verify(PAYMENT, payment_provider.url, payment_states(payment_provider))


def test_theater_peer_honours_the_pact(theater_provider: TheaterPeer) -> None:
    """Every interaction of booking-service → theater-service passes against the peer server."""
    verify(THEATER, theater_provider.url, theater_states(theater_provider))
