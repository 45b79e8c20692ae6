"""Settings: BOOKING_* variables and .env, validated with a message naming the variable."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from booking.entrypoints.identity import Authenticator
from booking.entrypoints.settings import AuthMode, SettingsError, load_settings

GOOD_SECRET = base64.b64encode(b"s" * 32).decode()


def test_defaults_are_the_embedded_service(tmp_path: Path) -> None:
    """No variables: SQLite in the data dir, no Redis/Kafka/peers, jwt with a dev secret."""
    settings = load_settings({"BOOKING_DATA_DIR": str(tmp_path)}, dotenv=None)
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'booking.db'}"
    assert settings.redis_url is None
    assert settings.kafka_bootstrap_servers is None
    assert settings.is_embedded
    assert settings.resolved_auth_mode is AuthMode.JWT
    assert settings.hold_ttl_seconds == 300
    assert settings.service_role == "ROLE_SERVICE_ACCOUNT"
    secret = settings.jwt_key_material()
    assert len(base64.b64decode(secret)) == 64
    assert settings.jwt_key_material() == secret  # kept in the data dir
    assert (tmp_path / "dev-jwt-secret").stat().st_mode & 0o077 == 0


def test_a_secret_makes_gateway_jwt_the_default() -> None:
    """Production default: with BOOKING_JWT_SECRET set, the mode is gateway+jwt."""
    settings = load_settings({"BOOKING_JWT_SECRET": GOOD_SECRET}, dotenv=None)
    assert settings.resolved_auth_mode is AuthMode.GATEWAY_JWT
    assert Authenticator.from_settings(settings).mode is AuthMode.GATEWAY_JWT


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"BOOKING_HOLD_TTL_SECONDS": "soon"}, "BOOKING_HOLD_TTL_SECONDS"),
        ({"BOOKING_HOLD_TTL_SECONDS": "-5"}, "BOOKING_HOLD_TTL_SECONDS"),
        ({"BOOKING_PORT": "70000"}, "BOOKING_PORT"),
        ({"BOOKING_AUTH_MODE": "oauth"}, "BOOKING_AUTH_MODE"),
        ({"BOOKING_AUTH_MODE": "jwt"}, "BOOKING_JWT_SECRET"),
        ({"BOOKING_JWT_SECRET": "not base64!"}, "BOOKING_JWT_SECRET"),
        ({"BOOKING_JWT_SECRET": base64.b64encode(b"short").decode()}, "BOOKING_JWT_SECRET"),
        ({"BOOKING_DATABASE_URL": "mysql://x"}, "BOOKING_DATABASE_URL"),
        ({"BOOKING_REDIS_URL": "http://x"}, "BOOKING_REDIS_URL"),
        ({"BOOKING_PAYMENT_SERVICE_URL": "payment:8080"}, "BOOKING_PAYMENT_SERVICE_URL"),
        ({"BOOKING_KAFKA_ENABLE_IDEMPOTENCE": "maybe"}, "BOOKING_KAFKA_ENABLE_IDEMPOTENCE"),
        ({"BOOKING_RECONCILE_INTERVAL_SECONDS": "0"}, "BOOKING_RECONCILE_INTERVAL_SECONDS"),
        ({"BOOKING_PAYMENT_RESULTS_TOPIC": "results"}, "BOOKING_PAYMENT_RESULTS_TOPIC"),
        ({"BOOKING_READINESS_REQUIRED": "database,disk"}, "BOOKING_READINESS_REQUIRED"),
        ({"BOOKING_HOLD_TTL": "300"}, "BOOKING_HOLD_TTL"),
    ],
)
def test_bad_values_name_the_variable(environ: dict[str, str], variable: str) -> None:
    """Each malformed or unknown variable is refused with its own name in the message."""
    with pytest.raises(SettingsError) as caught:
        load_settings(environ, dotenv=None)
    assert caught.value.variable == variable
    assert str(caught.value).startswith(variable)


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    """.env supplies values; the process environment overrides them."""
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# comment\nexport BOOKING_HOLD_TTL_SECONDS=120\nBOOKING_REDIS_URL='redis://r:6379/0'\n"
        "BOOKING_SERVICE_ROLE=SERVICE_ACCOUNT\n"
    )
    settings = load_settings({"BOOKING_SERVICE_ROLE": "ROLE_INTERNAL"}, dotenv=dotenv)
    assert settings.hold_ttl_seconds == 120
    assert settings.redis_url == "redis://r:6379/0"
    assert settings.service_role == "ROLE_INTERNAL"


def test_production_values_parse() -> None:
    """URLs, booleans, lists and the service role as a platform deployment sets them."""
    settings = load_settings(
        {
            "BOOKING_DATABASE_URL": "postgresql://booking@db:5432/booking",
            "BOOKING_REDIS_URL": "redis://redis:6379/0",
            "BOOKING_KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
            "BOOKING_KAFKA_ENABLE_IDEMPOTENCE": "false",
            "BOOKING_PAYMENT_RESULTS_TOPIC": "payment_results",
            "BOOKING_PAYMENT_SERVICE_URL": "http://payment:8083/",
            "BOOKING_THEATER_SERVICE_URL": "http://theater:8082",
            "BOOKING_EUREKA_URL": "http://eureka:8761/eureka",
            "BOOKING_AUTH_MODE": "gateway",
            "BOOKING_RUN_WORKERS": "no",
            "BOOKING_READINESS_REQUIRED": "database,kafka",
            "BOOKING_WEBHOOK_SECRET": "whsec",
            "BOOKING_BASE_URL": "https://booking.example",
        },
        dotenv=None,
    )
    assert settings.payment_service_url == "http://payment:8083"
    assert settings.kafka_enable_idempotence is False
    assert settings.run_workers is False
    assert settings.readiness_required == ("database", "kafka")
    assert settings.resolved_auth_mode is AuthMode.GATEWAY
    assert not settings.is_embedded
