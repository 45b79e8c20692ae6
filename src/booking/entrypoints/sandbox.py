"""The sandbox checkout page of the embedded default: Pay or Decline, applied like any result."""

from __future__ import annotations

from html import escape

from dishka import FromDishka
from dishka.integrations.litestar import inject
from litestar import MediaType, Response, get, post
from litestar.params import FromPath
from litestar.response import Redirect

from booking.adapters.sandbox.payment import Checkout, SandboxPaymentGateway
from booking.application.errors import BookingNotFound
from booking.application.payments import ApplyPaymentResult
from booking.application.queries import BookingQueries
from booking.domain.booking import PaymentStatus
from booking.domain.errors import PaymentMismatch
from booking.domain.identity import USER, Principal
from booking.entrypoints.problems import ApiError
from booking.entrypoints.workers import RelayNudge
from booking.ports.payment import PaymentGateway

PATH = "/sandbox/checkout"

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sandbox checkout · booking {booking_id}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto; padding: 0 1rem; }}
.card {{ border: 1px solid #ccc; border-radius: .5rem; padding: 1.5rem; }}
.amount {{ font-size: 2rem; margin: .5rem 0 1rem; }}
form {{ display: inline; }}
button {{ font-size: 1rem; padding: .6rem 1.4rem; margin-right: .5rem; border-radius: .3rem;
         border: 0; cursor: pointer; }}
#pay {{ background: #1a7f37; color: white; }}
#decline {{ background: #cf222e; color: white; }}
.note {{ color: #666; font-size: .85rem; margin-top: 1.5rem; }}
</style>
</head>
<body>
<div class="card">
<h1>Sandbox checkout</h1>
<p>Booking <strong id="booking-id">{booking_id}</strong> · session <code>{session_id}</code></p>
<p class="amount" id="amount">₹{amount}</p>
<p>Payment: <strong id="payment-status">{payment_status}</strong></p>
<p>Booking: <strong id="booking-status">{booking_status}</strong></p>
{actions}
<p class="note">No card network is involved: this page stands in for the Payment Service.</p>
</div>
</body>
</html>
"""

_ACTIONS = """<form method="post" action="{base}/{session_id}/pay">
<button id="pay" type="submit">Pay</button></form>
<form method="post" action="{base}/{session_id}/decline">
<button id="decline" type="submit">Decline</button></form>"""


def _sandbox(gateway: PaymentGateway, session_id: str) -> tuple[SandboxPaymentGateway, Checkout]:
    if not isinstance(gateway, SandboxPaymentGateway):
        raise ApiError(404, "NOT_FOUND", "the sandbox checkout is not in use")
    checkout = gateway.checkouts.get(session_id)
    if checkout is None:
        raise ApiError(404, "CHECKOUT_NOT_FOUND", "no such checkout session")
    return gateway, checkout


def _owner(checkout: Checkout) -> Principal:
    return Principal.of(checkout.user_id, None, [USER])


@get(f"{PATH}/{{session_id:str}}", include_in_schema=False, media_type=MediaType.HTML)
@inject
async def checkout_page(
    session_id: FromPath[str],
    gateway: FromDishka[PaymentGateway],
    queries: FromDishka[BookingQueries],
) -> Response[str]:
    _, checkout = _sandbox(gateway, session_id)
    try:
        booking = await queries.get(_owner(checkout), checkout.booking_id)
        booking_status = booking.status.value
        if booking.failure_reason is not None:
            booking_status += f" ({booking.failure_reason.value})"
    except BookingNotFound:
        booking_status = "UNKNOWN"
    actions = ""
    if checkout.status is PaymentStatus.PENDING:
        actions = _ACTIONS.format(base=PATH, session_id=escape(session_id))
    page = _PAGE.format(
        booking_id=checkout.booking_id,
        session_id=escape(session_id),
        amount=f"{checkout.amount.to_major():.2f}",
        payment_status=checkout.status.value,
        booking_status=escape(booking_status),
        actions=actions,
    )
    return Response(page, media_type=MediaType.HTML)


async def _settle(
    session_id: FromPath[str],
    status: PaymentStatus,
    gateway: PaymentGateway,
    apply: ApplyPaymentResult,
    nudge: RelayNudge,
) -> Redirect:
    sandbox, checkout = _sandbox(gateway, session_id)
    result = sandbox.settle(session_id, status)
    try:
        await apply(result, booking_id=checkout.booking_id, actor="sandbox-checkout")
    except (BookingNotFound, PaymentMismatch):
        pass  # the page shows what the booking is; the reconciler settles the rest
    finally:
        nudge.set()
    return Redirect(f"{PATH}/{session_id}", status_code=303)


@post(f"{PATH}/{{session_id:str}}/pay", include_in_schema=False, status_code=303)
@inject
async def pay(
    session_id: FromPath[str],
    gateway: FromDishka[PaymentGateway],
    apply: FromDishka[ApplyPaymentResult],
    nudge: FromDishka[RelayNudge],
) -> Redirect:
    return await _settle(session_id, PaymentStatus.COMPLETED, gateway, apply, nudge)


@post(f"{PATH}/{{session_id:str}}/decline", include_in_schema=False, status_code=303)
@inject
async def decline(
    session_id: FromPath[str],
    gateway: FromDishka[PaymentGateway],
    apply: FromDishka[ApplyPaymentResult],
    nudge: FromDishka[RelayNudge],
) -> Redirect:
    return await _settle(session_id, PaymentStatus.FAILED, gateway, apply, nudge)
