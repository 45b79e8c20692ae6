"""Reading compose.yaml as the compose tests and the stack test need it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from booking.entrypoints.settings import read_dotenv

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "bookticket/booking:latest"


def load_compose() -> dict[str, Any]:
    """compose.yaml as a plain mapping (YAML anchors and merge keys resolved)."""
    document = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(document, dict), "compose.yaml is not a mapping"
    return document


def env_of(service: dict[str, Any]) -> dict[str, str]:
    """The environment a booking process of this service sees: env files, then `environment`."""
    env: dict[str, str] = {}
    for entry in service.get("env_file", []):
        path = ROOT / (entry["path"] if isinstance(entry, dict) else entry)
        required = entry.get("required", True) if isinstance(entry, dict) else True
        if path.exists():
            env.update(read_dotenv(path))
        else:
            assert not required, f"missing env file {path}"
    env.update({k: str(v) for k, v in (service.get("environment") or {}).items()})
    return env


def booking_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Services that run the `booking` entrypoint of the image."""
    return {
        name: s for name, s in services.items() if s.get("image") == IMAGE and "entrypoint" not in s
    }


def with_option(command: list[str], option: str, value: str) -> list[str]:
    """The command with `option`'s value replaced (it must be there)."""
    assert option in command, f"{option} not in {command}"
    changed = list(command)
    changed[changed.index(option) + 1] = value
    return changed
