"""HttpPaymentGateway: the platform's Payment Service (checkout create and verify) over httpx."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import quote

import httpx
import msgspec
import structlog

from booking.adapters.http._common import (
    DEFAULT_SERVICE_ROLE,
    PeerAdapter,
    RetryPolicy,
    TransientStatus,
    build_request,
    encode_json,
    identity_headers,
)
from booking.adapters.http._common import send_retrying as _send_retrying
from booking.domain.booking import PaymentResult, PaymentSession, PaymentStatus
from booking.domain.errors import InvalidMoney
from booking.domain.identity import Principal
from booking.domain.money import Money
from booking.ports.directory import ServiceDirectory
from booking.ports.errors import DependencyUnavailable, PaymentRejected, PaymentUnavailable

log = structlog.get_logger(__name__)
_T = TypeVar("_T")

SERVICE_NAME = "payment-service"
BASE_PATH = "/api/v1/internal/payments"
HEALTH_PATH = "/actuator/health"
# Epoch values above this are milliseconds, not seconds (year 5138 in seconds).
_EPOCH_MILLIS_THRESHOLD = 100_000_000_000


class _CheckoutRequest(msgspec.Struct, rename="camel", omit_defaults=False):
    booking_id: int
    user_id: int
    amount: float
    success_url: str | None
    cancel_url: str | None


class _CheckoutAnswer(msgspec.Struct, rename="camel"):
    session_id: str
    payment_url: str
    booking_id: int | None = None
    amount: float | None = None
    status: str | None = None
    message: str | None = None
    expires_at: int | float | None = None


class _PaymentAnswer(msgspec.Struct, rename="camel"):
    """The Payment Service's PaymentResponse: verify answers and every error body."""

    payment_id: int | None = None
    booking_id: int | None = None
    payment_status: str | None = None
    transaction_id: str | None = None
    amount: float | None = None
    message: str | None = None


_DEFINITIVE = {
    "PENDING": PaymentStatus.PENDING,
    "COMPLETED": PaymentStatus.COMPLETED,
    "FAILED": PaymentStatus.FAILED,
}


class HttpPaymentGateway(PeerAdapter):
    """PaymentGateway over the Payment Service's internal HTTP API (contracts section 2).

    `create_checkout` is sent once, never retried: the Payment Service has no idempotency key,
    so a repeat would open a second checkout. A timeout or a dropped connection is
    `PaymentUnavailable` (a checkout may exist); a 400 `FAILED` is the Payment Service's transient
    gateway error, also `PaymentUnavailable`; any other 4xx, and an answer naming another booking
    or amount, is `PaymentRejected`.

    `verify` is idempotent and retried on connection errors, timeouts and 5xx within `retry`.
    Only a 200 answer is definitive; a COMPLETED without its booking id and amount is not
    evidence and answers UNKNOWN; everything else (the 400 `FAILED` trap included) is UNKNOWN.

    Give either `base_url` or a `directory` to resolve `service` in. When no `client` is given the
    gateway makes its own and closes it in `aclose()`.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        directory: ServiceDirectory | None = None,
        service: str = SERVICE_NAME,
        client: httpx.AsyncClient | None = None,
        timeout: float = 5.0,
        verify_retry: RetryPolicy | None = None,
        service_role: str = DEFAULT_SERVICE_ROLE,
        success_url: str | None = None,
        cancel_url: str | None = None,
    ) -> None:
        super().__init__(
            service=service,
            base_url=base_url,
            directory=directory,
            client=client,
            timeout=timeout,
            service_role=service_role,
        )
        self._verify_retry = verify_retry if verify_retry is not None else RetryPolicy()
        self._success_url = success_url
        self._cancel_url = cancel_url

    async def create_checkout(
        self, booking_id: int, amount: Money, caller: Principal
    ) -> PaymentSession:
        url = await self._url(f"{BASE_PATH}/checkout/create")
        body = _CheckoutRequest(
            booking_id=booking_id,
            user_id=caller.user_id,
            amount=amount.to_major(),
            success_url=self._success_url,
            cancel_url=self._cancel_url,
        )
        try:
            request = build_request(
                self._client,
                "POST",
                url,
                identity_headers(caller, self._service_role),
                timeout=self._timeout,
                json=encode_json(body),
            )
            response = await self._client.send(request)
        except httpx.HTTPError as exc:
            log.warning("payment.create.unknown_outcome", booking_id=booking_id, error=repr(exc))
            raise PaymentUnavailable(
                f"checkout create for booking {booking_id} has an unknown outcome"
            ) from exc

        if response.is_success:
            return self._checkout_session(response, booking_id, amount)
        error = _decode_or_none(response.content, _PaymentAnswer)
        status = error.payment_status if error is not None else None
        log.warning(
            "payment.create.refused",
            booking_id=booking_id,
            http_status=response.status_code,
            payment_status=status,
        )
        if response.status_code >= 500 or (response.status_code == 400 and status == "FAILED"):
            # 400 FAILED is how the Payment Service reports a transient gateway problem.
            raise PaymentUnavailable(
                f"payment service answered {response.status_code} {status or ''}".strip()
            )
        raise PaymentRejected(
            f"payment service refused the checkout: {response.status_code} {status or ''}".strip()
        )

    def _checkout_session(
        self, response: httpx.Response, booking_id: int, amount: Money
    ) -> PaymentSession:
        answer = _decode_or_none(response.content, _CheckoutAnswer)
        if answer is None or not answer.session_id:
            # A checkout probably exists, but we cannot name it: the outcome is unknown.
            raise PaymentUnavailable("unreadable checkout answer from the payment service")
        if answer.booking_id != booking_id:
            raise PaymentRejected(
                f"checkout {answer.session_id} names booking {answer.booking_id}, not {booking_id}"
            )
        if _money_or_none(answer.amount, amount.currency) != amount:
            raise PaymentRejected(
                f"checkout {answer.session_id} is for {answer.amount}, not {amount.to_major()}"
            )
        return PaymentSession(
            session_id=answer.session_id,
            url=answer.payment_url,
            expires_at=_epoch_to_datetime(answer.expires_at),
        )

    async def verify(self, session_id: str, caller: Principal) -> PaymentResult:
        unknown = PaymentResult(session_id, PaymentStatus.UNKNOWN, None, None)
        try:
            url = await self._url(f"{BASE_PATH}/checkout/verify/{_path_segment(session_id)}")
            response = await _send_retrying(
                self._client,
                "GET",
                url,
                headers=identity_headers(caller, self._service_role),
                request_timeout=self._timeout,
                policy=self._verify_retry,
            )
        except (httpx.HTTPError, TransientStatus, PaymentUnavailable) as exc:
            log.warning("payment.verify.unknown", session_id=session_id, error=repr(exc))
            return unknown

        if response.status_code != 200:
            # Never a failure: the 400 FAILED trap is a transient error on their side.
            log.info(
                "payment.verify.not_definitive",
                session_id=session_id,
                http_status=response.status_code,
            )
            return unknown
        answer = _decode_or_none(response.content, _PaymentAnswer)
        if answer is None:
            log.warning("payment.verify.unreadable", session_id=session_id)
            return unknown
        status = _DEFINITIVE.get((answer.payment_status or "").upper(), PaymentStatus.UNKNOWN)
        amount = _money_or_none(answer.amount)
        if status is PaymentStatus.COMPLETED and (answer.booking_id is None or amount is None):
            log.warning("payment.verify.incomplete_evidence", session_id=session_id)
            return unknown
        return PaymentResult(session_id, status, answer.booking_id, amount)

    async def ping(self) -> None:
        try:
            response = await self._client.get(await self._url(HEALTH_PATH), timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise PaymentUnavailable("payment service unreachable") from exc
        if not response.is_success:
            raise PaymentUnavailable(f"payment service health answered {response.status_code}")

    async def _url(self, path: str) -> str:
        try:
            return await self._address.url(path)
        except DependencyUnavailable as exc:
            raise PaymentUnavailable(f"{self._address.service} cannot be resolved") from exc


def _decode_or_none(content: bytes, kind: type[_T]) -> _T | None:
    try:
        return msgspec.json.decode(content, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _money_or_none(value: float | None, currency: str | None = None) -> Money | None:
    if value is None:
        return None
    try:
        return Money.from_major(value) if currency is None else Money.from_major(value, currency)
    except InvalidMoney:
        return None


def _epoch_to_datetime(value: float | None) -> datetime | None:
    if value is None or value <= 0:
        return None
    seconds = value / 1000 if value > _EPOCH_MILLIS_THRESHOLD else value
    return datetime.fromtimestamp(seconds, tz=UTC)


def _path_segment(value: str) -> str:
    # A session id is opaque text: keep it one path segment.
    return quote(value, safe="")
