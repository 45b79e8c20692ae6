"""Typed settings from `BOOKING_*` environment variables and an optional `.env` file."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PREFIX = "BOOKING_"


class AuthMode(StrEnum):
    """How a caller's identity is established (contracts section 1)."""

    JWT = "jwt"  # Authorization: Bearer, verified; identity headers ignored
    GATEWAY = "gateway"  # X-User-* headers trusted as the gateway sent them
    GATEWAY_JWT = "gateway+jwt"  # both: the token is verified, headers must agree with it


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the environment variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


def _str(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _positive_int(value: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise ValueError("must be an integer") from None
    if number <= 0:
        raise ValueError("must be positive")
    return number


def _non_negative_int(value: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise ValueError("must be an integer") from None
    if number < 0:
        raise ValueError("must not be negative")
    return number


def _port(value: str) -> int:
    number = _positive_int(value)
    if number > 65535:
        raise ValueError("must be a TCP port (1-65535)")
    return number


def _positive_float(value: str) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        raise ValueError("must be a number") from None
    if not number > 0 or number == float("inf"):
        raise ValueError("must be a positive number")
    return number


def _http_url(value: str) -> str:
    value = _str(value).rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return value


def _redis_url(value: str) -> str:
    value = _str(value)
    if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    return value


def _database_url(value: str) -> str:
    value = _str(value)
    scheme = value.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme not in ("postgresql", "postgres", "sqlite", "memory"):
        raise ValueError("must be a postgresql://, sqlite:/// or memory:// URL")
    return value


def _auth_mode(value: str) -> AuthMode:
    try:
        return AuthMode(value.strip().lower())
    except ValueError:
        raise ValueError("must be one of jwt, gateway, gateway+jwt") from None


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


_HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")


def _algorithms(value: str) -> tuple[str, ...]:
    names = tuple(a.upper() for a in _csv(value))
    if not names or any(a not in _HMAC_ALGORITHMS for a in names):
        raise ValueError("must list HMAC algorithms among HS256, HS384, HS512")
    return names


def _secret(value: str) -> str:
    value = _str(value)
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be base64 (the platform's user service decodes it so)") from None
    if len(key) < 32:
        raise ValueError("must decode to at least 32 bytes (256 bits) for HMAC-SHA")
    return value


_DEPENDENCIES = ("database", "redis", "kafka", "payment", "theater")


def _dependencies(value: str) -> tuple[str, ...]:
    names = tuple(n.lower() for n in _csv(value))
    unknown = [n for n in names if n not in _DEPENDENCIES]
    if unknown:
        raise ValueError(f"unknown dependency {unknown[0]!r}; known: {', '.join(_DEPENDENCIES)}")
    return names


def _networks(value: str) -> tuple[str, ...]:
    networks = _csv(value)
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ValueError(f"{network!r} is not a CIDR network") from None
    return networks


def _log_level(value: str) -> str:
    level = value.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


def _spec(parse: Callable[[str], Any], help_text: str) -> dict[str, Any]:
    return {"parse": parse, "help": help_text}


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the service. Unset optional URLs select the embedded stand-ins."""

    data_dir: str = field(
        default="var", metadata=_spec(_str, "embedded data: SQLite file, dev JWT secret")
    )
    database_url: str | None = field(
        default=None,
        metadata=_spec(_database_url, "postgresql:// or sqlite:/// (default: data dir file)"),
    )
    database_pool_size: int = field(
        default=20,
        metadata=_spec(_positive_int, "database connections per process (a fixed pool)"),
    )
    redis_url: str | None = field(
        default=None, metadata=_spec(_redis_url, "Redis for seat holds (unset: in-process)")
    )
    kafka_bootstrap_servers: str | None = field(
        default=None, metadata=_spec(_str, "Kafka brokers (unset: events stay in the outbox)")
    )
    kafka_enable_idempotence: bool = field(
        default=True, metadata=_spec(_bool, "idempotent Kafka producer")
    )
    payment_results_topic: str | None = field(
        default=None, metadata=_spec(_str, "topic of pushed payment results (unset: none)")
    )
    payment_service_url: str | None = field(
        default=None, metadata=_spec(_http_url, "Payment Service (unset: sandbox checkout)")
    )
    theater_service_url: str | None = field(
        default=None, metadata=_spec(_http_url, "Theater Service (unset: local demo inventory)")
    )
    eureka_url: str | None = field(
        default=None, metadata=_spec(_http_url, "Eureka server: register and resolve peers")
    )
    auth_mode: AuthMode | None = field(
        default=None,
        metadata=_spec(
            _auth_mode, "jwt, gateway or gateway+jwt (unset: gateway+jwt with a secret, else jwt)"
        ),
    )
    jwt_secret: str | None = field(
        default=None, metadata=_spec(_secret, "base64 HMAC key of the platform's JWTs")
    )
    jwt_algorithms: tuple[str, ...] = field(
        default=_HMAC_ALGORITHMS, metadata=_spec(_algorithms, "accepted JWT algorithms")
    )
    jwt_leeway_seconds: float = field(
        default=5.0, metadata=_spec(_positive_float, "clock skew allowed on exp")
    )
    service_role: str = field(
        default="ROLE_SERVICE_ACCOUNT", metadata=_spec(_str, "role sent on internal calls")
    )
    hold_ttl_seconds: int = field(
        default=300, metadata=_spec(_positive_int, "how long seats are held for the payment")
    )
    hold_grace_seconds: int = field(
        default=60,
        metadata=_spec(_positive_int, "wait past the hold for an unanswering Payment Service"),
    )
    reconcile_interval_seconds: float = field(
        default=5.0, metadata=_spec(_positive_float, "how often the reconciler looks for due holds")
    )
    relay_interval_seconds: float = field(
        default=0.2, metadata=_spec(_positive_float, "outbox relay polling period")
    )
    webhook_secret: str | None = field(
        default=None, metadata=_spec(_str, "HMAC secret of payment webhooks (unset: off)")
    )
    webhook_tolerance_seconds: int = field(
        default=300, metadata=_spec(_positive_int, "webhook timestamp tolerance")
    )
    run_workers: bool = field(
        default=True, metadata=_spec(_bool, "run relay and reconciler inside `serve`")
    )
    host: str = field(default="127.0.0.1", metadata=_spec(_str, "listen address"))
    port: int = field(default=8000, metadata=_spec(_port, "listen port"))
    base_url: str | None = field(
        default=None, metadata=_spec(_http_url, "public URL of this service (sandbox links)")
    )
    max_body_bytes: int = field(
        default=16_384, metadata=_spec(_positive_int, "largest accepted request body")
    )
    http_one_write: bool = field(
        default=True,
        metadata=_spec(
            _bool,
            "`serve` sends what one event loop turn writes to a connection in one write "
            "(false: uvicorn's own httptools protocol, headers and body apart)",
        ),
    )
    create_limit_per_minute: int = field(
        default=60,
        metadata=_spec(
            _non_negative_int, "bookings one caller may create per minute, per process (0: off)"
        ),
    )
    create_limit_burst: int = field(
        default=20, metadata=_spec(_positive_int, "bookings one caller may create at once")
    )
    idempotency_ttl_seconds: int = field(
        default=86_400, metadata=_spec(_positive_int, "how long Idempotency-Key answers last")
    )
    retry_after_seconds: int = field(
        default=5, metadata=_spec(_positive_int, "Retry-After of 503 answers")
    )
    readiness_required: tuple[str, ...] = field(
        default=("database",),
        metadata=_spec(_dependencies, "dependencies whose outage makes /health/ready 503"),
    )
    http_timeout_seconds: float = field(
        default=5.0, metadata=_spec(_positive_float, "timeout of Payment/Theater calls")
    )
    health_timeout_seconds: float = field(
        default=1.0, metadata=_spec(_positive_float, "timeout of one readiness probe")
    )
    trusted_service_networks: tuple[str, ...] = field(
        default=(),
        metadata=_spec(
            _networks,
            "gateway+jwt: CIDRs whose callers may identify by X-User-* headers alone "
            "(the Notification Service sends no JWT)",
        ),
    )
    instance_host: str | None = field(
        default=None, metadata=_spec(_str, "host name announced to Eureka")
    )
    log_level: str = field(default="INFO", metadata=_spec(_log_level, "log level"))
    log_json: bool = field(default=False, metadata=_spec(_bool, "JSON log lines"))
    access_log: bool = field(default=True, metadata=_spec(_bool, "one log line per request"))
    otel_enabled: bool = field(
        default=False, metadata=_spec(_bool, "OpenTelemetry tracing of requests and peer calls")
    )
    otel_exporter_endpoint: str | None = field(
        default=None,
        metadata=_spec(
            _http_url, "OTLP/HTTP traces URL, e.g. http://collector:4318/v1/traces (unset: OTEL_*)"
        ),
    )
    otel_service_name: str = field(
        default="booking-service", metadata=_spec(_str, "service.name of the spans")
    )
    worker_metrics_port: int | None = field(
        default=None, metadata=_spec(_port, "`booking worker` serves /metrics here (unset: off)")
    )

    # --- derived values -------------------------------------------------------------------

    @property
    def resolved_database_url(self) -> str:
        """The embedded default is a SQLite file in the data directory."""
        if self.database_url is not None:
            return self.database_url
        return f"sqlite:///{Path(self.data_dir).resolve() / 'booking.db'}"

    @property
    def uses_memory_database(self) -> bool:
        return self.resolved_database_url.startswith("memory:")

    @property
    def resolved_auth_mode(self) -> AuthMode:
        """Explicit BOOKING_AUTH_MODE wins. Otherwise: `gateway+jwt` (the production default)
        when a JWT secret is configured, and plain `jwt` with the embedded dev secret when not,
        so that `booking serve` works on a laptop with a token from `booking token`."""
        if self.auth_mode is not None:
            return self.auth_mode
        return AuthMode.GATEWAY_JWT if self.jwt_secret is not None else AuthMode.JWT

    @property
    def resolved_base_url(self) -> str:
        if self.base_url is not None:
            return self.base_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    @property
    def is_embedded(self) -> bool:
        """No Payment Service configured: the sandbox checkout serves."""
        return self.payment_service_url is None and self.eureka_url is None

    @property
    def uses_local_inventory(self) -> bool:
        """No Theater Service configured: the local demo inventory serves."""
        return self.theater_service_url is None and self.eureka_url is None

    def dev_secret_path(self) -> Path:
        return Path(self.data_dir) / "dev-jwt-secret"

    def jwt_key_material(self) -> str:
        """The configured base64 secret, or the embedded dev secret (created on first use)."""
        if self.jwt_secret is not None:
            return self.jwt_secret
        return ensure_dev_secret(self.dev_secret_path())

    def with_overrides(self, **changes: Any) -> Settings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)


def ensure_dev_secret(path: Path) -> str:
    """A random 512-bit secret kept in the data directory (mode 0600), so the server and
    `booking token` agree across restarts. Only for the embedded default."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = base64.b64encode(secrets.token_bytes(64)).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret


def env_name(field_name: str) -> str:
    return PREFIX + field_name.upper()


def read_dotenv(path: Path) -> dict[str, str]:
    """`KEY=VALUE` lines; `#` comments, optional `export ` and surrounding quotes."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        if "=" not in line:
            raise SettingsError(f"{path}:{number}", "expected KEY=VALUE")
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def load_settings(
    environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")
) -> Settings:
    """Read and validate every `BOOKING_*` variable; the environment overrides `.env`.

    Raises `SettingsError` naming the first bad variable. Unknown `BOOKING_*` names are refused
    too: a typo must not silently select an embedded stand-in in production."""
    source: dict[str, str] = {}
    if dotenv is not None:
        source.update(read_dotenv(dotenv))
    source.update(os.environ if environ is None else environ)
    known = {env_name(f.name): f for f in fields(Settings)}
    values: dict[str, Any] = {}
    for name, raw in source.items():
        if not name.startswith(PREFIX):
            continue
        spec = known.get(name)
        if spec is None:
            if name.startswith(("BOOKING_TEST_", "BOOKING_FAULT_")):
                continue  # read by the test harness, not by the service
            raise SettingsError(name, "unknown setting")
        if raw.strip() == "" and spec.default is None:
            continue  # an empty optional URL means "unset"
        try:
            values[spec.name] = spec.metadata["parse"](raw)
        except ValueError as exc:
            raise SettingsError(name, str(exc)) from None
    settings = Settings(**values)
    _check_consistency(settings)
    return settings


def _check_consistency(settings: Settings) -> None:
    mode = settings.resolved_auth_mode
    explicit = settings.auth_mode is not None
    if explicit and mode is not AuthMode.GATEWAY and settings.jwt_secret is None:
        raise SettingsError(env_name("jwt_secret"), f"required when BOOKING_AUTH_MODE={mode}")
    if settings.payment_results_topic is not None and settings.kafka_bootstrap_servers is None:
        raise SettingsError(
            env_name("payment_results_topic"), "needs BOOKING_KAFKA_BOOTSTRAP_SERVERS"
        )


def describe() -> list[tuple[str, str, str]]:
    """(variable, default, help) of every setting, for `booking settings` and the README."""
    rows = []
    for spec in fields(Settings):
        default = spec.default
        shown = "" if default is None else str(default)
        if isinstance(default, tuple):
            shown = ",".join(default)
        rows.append((env_name(spec.name), shown, spec.metadata["help"]))
    return rows
