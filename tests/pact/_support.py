"""What the pact tests share: names, the pact folder, the identity-header expectations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pact import Pact, match

CONSUMER = "booking-service"
PAYMENT = "payment-service"
THEATER = "theater-service"
PACTS_DIR = Path(__file__).resolve().parents[2] / "pacts"

USER_ID = 7
ROLES_WITH_SERVICE_ACCOUNT = r"^([A-Z_]+,)*ROLE_SERVICE_ACCOUNT(,[A-Z_]+)*$"


def new_pact(provider: str) -> Pact:
    return Pact(CONSUMER, provider).with_specification("V4")


def pact_file(provider: str) -> Path:
    return PACTS_DIR / f"{CONSUMER}-{provider}.json"


def expect_identity(interaction: Any) -> Any:
    """The identity headers every internal call must carry (contracts section 1, outbound)."""
    return (
        interaction.with_header("X-User-Id", match.regex(str(USER_ID), regex=r"^\d+$"))
        .with_header("X-User-Name", match.regex(f"{USER_ID}_john", regex=r"^.+$"))
        .with_header(
            "X-User-Roles",
            match.regex("ROLE_USER,ROLE_SERVICE_ACCOUNT", regex=ROLES_WITH_SERVICE_ACCOUNT),
        )
        .with_header("X-Request-ID", match.regex("4bf92f3577b34da6a3ce929d0e0e4736", regex=r"^.+$"))
    )


@contextmanager
def serving(pact: Pact) -> Iterator[str]:
    """Run the Pact mock server; on a clean exit (every interaction matched) merge the pact file."""
    with pact.serve(addr="127.0.0.1") as server:
        yield str(server.url).rstrip("/")
    pact.write_file(PACTS_DIR)
