"""Signed payment webhooks in the Stripe scheme: `Booking-Signature: t=<unix>,v1=<hex>`."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from booking.ports.clock import Clock
from booking.ports.idempotency import IdempotencyStore, Started, StoredResponse

SIGNATURE_HEADER = "Booking-Signature"
_SCOPE = "webhook"


class WebhookRefused(Exception):
    """The call is not a fresh, authentic webhook; it changes nothing. `status` is its 4xx."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The `v1` signature: HMAC-SHA256 over `"{t}.{raw body}"`, hex."""
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: bytes, body: bytes, now: datetime | None = None) -> str:
    timestamp = int((now or datetime.now(UTC)).timestamp())
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1" and value:
            signatures.append(value.strip().lower())
    if timestamp is None or not signatures:
        raise WebhookRefused(400, "WEBHOOK_SIGNATURE_MALFORMED", "expected t=<unix>,v1=<hex>")
    return timestamp, signatures


class WebhookVerifier:
    """Contract: `verify` accepts a call only when one `v1` matches (constant-time compare) the
    raw body under the secret, its timestamp is within `tolerance` of now (past or future),
    and the same signature was not accepted before (replays are refused, for every replica,
    through the idempotency store). `settled`/`failed` tell whether the call's effect is kept:
    after a failure (5xx) the same call may be delivered again."""

    def __init__(
        self, secret: bytes | None, tolerance: timedelta, clock: Clock, seen: IdempotencyStore
    ) -> None:
        self._secret = secret or b""
        self.enabled = bool(secret)
        self._tolerance = tolerance
        self._clock = clock
        self._seen = seen

    async def verify(self, header: str | None, body: bytes) -> str:
        """Answers the accepted signature (the replay key)."""
        if not self.enabled:
            raise WebhookRefused(404, "NOT_FOUND", "webhooks are not enabled on this service")
        if header is None or not header.strip():
            raise WebhookRefused(
                400, "WEBHOOK_SIGNATURE_MISSING", f"{SIGNATURE_HEADER} is required"
            )
        timestamp, signatures = _parse(header)
        expected = sign(self._secret, timestamp, body)
        match = next((s for s in signatures if hmac.compare_digest(s, expected)), None)
        if match is None:
            raise WebhookRefused(401, "WEBHOOK_SIGNATURE_INVALID", "the signature does not match")
        now = self._clock.now()
        sent = datetime.fromtimestamp(timestamp, UTC)
        if abs(now - sent) > self._tolerance:
            raise WebhookRefused(
                400,
                "WEBHOOK_TIMESTAMP_OUT_OF_TOLERANCE",
                "the signature timestamp is too old or too new",
            )
        fingerprint = hashlib.sha256(body).hexdigest()
        outcome = await self._seen.begin(_SCOPE, match, fingerprint, now, self._tolerance * 2)
        if not isinstance(outcome, Started):
            raise WebhookRefused(409, "WEBHOOK_REPLAYED", "this webhook was already received")
        return match

    async def settled(self, key: str, status: int) -> None:
        """Remember the signature for as long as its timestamp could pass the window."""
        await self._seen.complete(
            _SCOPE, key, StoredResponse(status, b""), self._clock.now(), self._tolerance * 2
        )

    async def failed(self, key: str) -> None:
        await self._seen.forget(_SCOPE, key)
