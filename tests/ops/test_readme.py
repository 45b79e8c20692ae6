"""The README stays true: its configuration table is `booking settings --markdown`, and it names
every endpoint, command, error code and metric the service has."""

from __future__ import annotations

import argparse
import re

import pytest

from booking.adapters.prometheus import PrometheusTelemetry
from booking.entrypoints.cli import _parser, main
from tests.http.conftest import ApiFactory

from .compose import ROOT

README = (ROOT / "README.md").read_text()
BEGIN = re.compile(r"^<!-- settings:begin.*-->$", re.MULTILINE)
END = "<!-- settings:end -->"


def test_configuration_table_is_the_generated_one(capsys: pytest.CaptureFixture[str]) -> None:
    """The table between the settings markers is exactly `booking settings --markdown`: every
    BOOKING_* setting with its default and meaning (regenerate it when a setting changes)."""
    assert main(["settings", "--markdown"]) == 0
    generated = capsys.readouterr().out.strip()
    begin = BEGIN.search(README)
    assert begin is not None, "the README lost its settings markers"
    table = README[begin.end() : README.index(END)].strip()
    assert table == generated, (
        "README configuration table is stale; paste `booking settings --markdown` between the "
        "settings markers"
    )


async def test_every_endpoint_is_documented(make_api: ApiFactory) -> None:
    """Every path of the OpenAPI document appears in the README's API section."""
    api = await make_api()
    paths = (await api.client.get("/schema/openapi.json")).json()["paths"]
    missing = [p for p in paths if p not in README]
    assert not missing, missing


def test_every_command_is_documented() -> None:
    """Every `booking` subcommand, and every `booking admin` tool, is named in the README."""
    parser = _parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        assert f"booking {name}" in README, name
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                for tool in action.choices:
                    assert f"booking {name} {tool}" in README, tool


def test_every_error_code_is_documented() -> None:
    """Each errorCode the entrypoints can answer is in the README's error table."""
    source = "\n".join(path.read_text() for path in (ROOT / "src/booking/entrypoints").glob("*.py"))
    codes = set(re.findall(r'(?:ApiError|Problem|WebhookRefused)\(\s*\d{3},\s*"([A-Z_]+)"', source))
    assert len(codes) > 20, codes
    missing = sorted(c for c in codes if f"`{c}`" not in README)
    assert not missing, missing


def test_every_metric_and_make_target_is_documented() -> None:
    """Each booking_* metric family, and the make targets the README promises, exist in both."""
    telemetry = PrometheusTelemetry()
    families = [m.name for m in telemetry.registry.collect() if m.name.startswith("booking_")]
    assert families
    missing = [f for f in families if f not in README]
    assert not missing, missing
    makefile = (ROOT / "Makefile").read_text()
    for target in ("serve", "test", "reliability", "bench"):
        assert f"make {target}" in README, target
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), target
    assert README.count("```mermaid") >= 1
