"""Who is calling: the platform's JWT, the gateway's X-User-* headers, or both (section 1)."""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from booking.domain.identity import ADMIN, SERVICE_ACCOUNT, USER, Principal, normalise_role
from booking.entrypoints.settings import AuthMode, Settings

_ID = re.compile(r"^[1-9][0-9]{0,18}$")
MAX_ID = 2**63 - 1
_JJWT_ALGORITHM_BY_KEY_LENGTH = ((64, "HS512"), (48, "HS384"), (32, "HS256"))


class Unauthenticated(Exception):
    """No usable identity: 401. `code` is the problem's errorCode."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class Forbidden(Exception):
    """A known caller without the role the call needs: 403."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def parse_user_id(value: str | int) -> int | None:
    """A positive Java Long, or None."""
    text = str(value).strip()
    if not _ID.match(text):
        return None
    number = int(text)
    return number if number <= MAX_ID else None


def _roles_of(claim: Any) -> list[str]:
    """`roles` as the user service writes it (`[{"authority": "ROLE_USER"}]`); plain strings
    are accepted too."""
    if not isinstance(claim, list):
        return []
    roles: list[str] = []
    for item in claim:
        if isinstance(item, str):
            roles.append(item)
        elif isinstance(item, dict) and isinstance(item.get("authority"), str):
            roles.append(item["authority"])
    return roles


def signing_algorithm(key: bytes) -> str:
    """The algorithm jjwt picks for an HMAC key of this length (the user service's behaviour)."""
    for length, name in _JJWT_ALGORITHM_BY_KEY_LENGTH:
        if len(key) >= length:
            return name
    raise ValueError("an HMAC-SHA key must be at least 256 bits")


def mint_token(
    secret_b64: str,
    user_id: int,
    roles: Iterable[str] = ("ROLE_USER",),
    *,
    name: str | None = None,
    ttl: timedelta = timedelta(hours=1),
    now: datetime | None = None,
    algorithm: str | None = None,
) -> str:
    """A token with the platform's claims, as the user service mints it (for local use)."""
    key = base64.b64decode(secret_b64)
    issued = now or datetime.now(UTC)
    claims = {
        "sub": str(user_id),
        "username": f"{user_id}_{name or 'user'}",
        "roles": [
            {"authority": r if r.upper().startswith("ROLE_") else f"ROLE_{r}"} for r in roles
        ],
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    return jwt.encode(claims, key, algorithm=algorithm or signing_algorithm(key))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


class Authenticator:
    """Turns request headers into a Principal, by the configured mode:

    - `jwt`: `Authorization: Bearer` verified (HMAC with the base64-decoded secret, algorithm
      among the pinned HMAC ones, `exp` and `sub` required, `none` refused); X-User-* ignored.
    - `gateway`: X-User-Id / X-User-Name / X-User-Roles trusted as sent.
    - `gateway+jwt`: the token is verified as in `jwt`, and identity headers that contradict
      it are refused. A verified service account may name the user it acts for in X-User-Id;
      nobody may claim a role the token lacks. Callers without a token from the configured
      trusted service networks (the Notification Service, which sends headers only) are
      identified by their headers; everyone else needs the token.
    """

    def __init__(
        self,
        mode: AuthMode,
        key: bytes | None,
        algorithms: tuple[str, ...] = ("HS256", "HS384", "HS512"),
        leeway: float = 5.0,
        trusted_networks: tuple[str, ...] = (),
    ) -> None:
        if mode is not AuthMode.GATEWAY and not key:
            raise ValueError(f"auth mode {mode} needs a JWT secret")
        self.mode = mode
        self._key = key or b""
        self._algorithms = list(algorithms)
        self._leeway = leeway
        self._trusted = [ipaddress.ip_network(n, strict=False) for n in trusted_networks]

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        mode = settings.resolved_auth_mode
        key = None
        if mode is not AuthMode.GATEWAY:
            key = base64.b64decode(settings.jwt_key_material())
        return cls(
            mode,
            key,
            settings.jwt_algorithms,
            settings.jwt_leeway_seconds,
            settings.trusted_service_networks,
        )

    def authenticate(self, headers: Mapping[str, str], client: str | None = None) -> Principal:
        """`client` is the caller's address, for the trusted service networks."""
        if self.mode is AuthMode.GATEWAY or (
            self.mode is AuthMode.GATEWAY_JWT
            and _header(headers, "authorization") is None
            and self._is_trusted(client)
        ):
            found = self._from_headers(headers)
            if found is None:
                raise Unauthenticated("UNAUTHENTICATED", "identity headers are missing")
            return found
        token = self._verified(headers)
        if self.mode is AuthMode.JWT:
            return token
        return self._reconcile(token, headers)

    def _is_trusted(self, client: str | None) -> bool:
        """A service on the internal network (the Notification Service) sends headers only."""
        if client is None or not self._trusted:
            return False
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(address in network for network in self._trusted)

    # --- jwt ------------------------------------------------------------------------------

    def _verified(self, headers: Mapping[str, str]) -> Principal:
        authorization = _header(headers, "authorization")
        if authorization is None:
            raise Unauthenticated("UNAUTHENTICATED", "a bearer token is required")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(
                "INVALID_TOKEN", "the Authorization header must be `Bearer <jwt>`"
            )
        try:
            claims = jwt.decode(
                token.strip(),
                self._key,
                algorithms=self._algorithms,
                options={"require": ["exp", "sub"]},
                leeway=self._leeway,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("TOKEN_EXPIRED", "the token has expired") from None
        except jwt.PyJWTError:
            raise Unauthenticated("INVALID_TOKEN", "the token is not valid") from None
        user_id = parse_user_id(claims["sub"]) if isinstance(claims["sub"], str | int) else None
        if user_id is None:
            raise Unauthenticated("INVALID_TOKEN", "the token's subject is not a user id")
        username = claims.get("username")
        return Principal.of(
            user_id, username if isinstance(username, str) else None, _roles_of(claims.get("roles"))
        )

    # --- gateway --------------------------------------------------------------------------

    @staticmethod
    def _from_headers(headers: Mapping[str, str]) -> Principal | None:
        raw_id = _header(headers, "x-user-id")
        if raw_id is None:
            return None
        user_id = parse_user_id(raw_id)
        if user_id is None:
            raise Unauthenticated("INVALID_IDENTITY", "X-User-Id must be a positive integer")
        roles = (_header(headers, "x-user-roles") or "").split(",")
        return Principal.of(user_id, _header(headers, "x-user-name"), roles)

    def _reconcile(self, token: Principal, headers: Mapping[str, str]) -> Principal:
        claimed_roles = _header(headers, "x-user-roles")
        if claimed_roles is not None:
            claimed = Principal.of(token.user_id, None, claimed_roles.split(",")).roles
            if not claimed <= token.roles:
                raise Unauthenticated(
                    "IDENTITY_MISMATCH",
                    "X-User-Roles claims roles the verified token does not hold",
                )
        name = _header(headers, "x-user-name")
        raw_id = _header(headers, "x-user-id")
        if raw_id is not None:
            user_id = parse_user_id(raw_id)
            if user_id is None:
                raise Unauthenticated("INVALID_IDENTITY", "X-User-Id must be a positive integer")
            if user_id != token.user_id:
                if not token.is_service:
                    raise Unauthenticated(
                        "IDENTITY_MISMATCH", "X-User-Id contradicts the verified token"
                    )
                # A service account acting for a booking's owner keeps only its own roles.
                return Principal.of(user_id, name, list(token.roles))
        if name is not None and name != token.username:
            raise Unauthenticated("IDENTITY_MISMATCH", "X-User-Name contradicts the verified token")
        return token


def require_role(caller: Principal, *roles: str) -> None:
    """403 unless the caller holds one of the roles (either spelling)."""
    if not any(caller.has(normalise_role(r)) for r in roles):
        raise Forbidden("this call needs one of the roles " + ", ".join(sorted(roles)))


BOOKING_ROLES = (USER, ADMIN)
SEAT_READER_ROLES = (USER, ADMIN, SERVICE_ACCOUNT)
