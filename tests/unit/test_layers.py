"""The layer contract, read from the source: what each layer may import."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "booking"
STDLIB = set(sys.stdlib_module_names) | {"__future__"}
TECHNOLOGIES = {
    "sql": {"sqlalchemy", "asyncpg", "aiosqlite", "alembic", "advanced_alchemy"},
    "redis": {"redis"},
    "kafka": {"aiokafka"},
    "http": {"httpx"},
}


def imports_of(folder: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(SRC))] = names
    return found


def test_domain_imports_only_the_standard_library() -> None:
    """domain/ is pure: the standard library and itself."""
    for module, names in imports_of(SRC / "domain").items():
        bad = {
            n for n in names if n.split(".")[0] not in STDLIB and not n.startswith("booking.domain")
        }
        assert not bad, f"{module} imports {bad}"


def test_ports_import_only_the_domain() -> None:
    """ports/ see the domain and the standard library only."""
    for module, names in imports_of(SRC / "ports").items():
        allowed = ("booking.domain", "booking.ports")
        bad = {n for n in names if n.split(".")[0] not in STDLIB and not n.startswith(allowed)}
        assert not bad, f"{module} imports {bad}"


def test_nothing_outside_entrypoints_imports_entrypoints() -> None:
    """Only the composition root and the runtime import booking.entrypoints."""
    for layer in ("domain", "ports", "application", "adapters"):
        for module, names in imports_of(SRC / layer).items():
            assert not any(n.startswith("booking.entrypoints") for n in names), module


@pytest.mark.parametrize("adapter", sorted(TECHNOLOGIES))
def test_adapters_never_import_another_adapters_technology(adapter: str) -> None:
    """adapters/sql uses no redis, adapters/redis no SQLAlchemy, and so on."""
    foreign = set().union(*(t for name, t in TECHNOLOGIES.items() if name != adapter))
    others = {f"booking.adapters.{name}" for name in TECHNOLOGIES if name != adapter}
    for module, names in imports_of(SRC / "adapters" / adapter).items():
        roots = {n.split(".")[0] for n in names}
        assert not roots & foreign, f"{module} imports {roots & foreign}"
        assert not any(n.startswith(tuple(others)) for n in names), module
