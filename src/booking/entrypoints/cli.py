"""The `booking` command: serve, migrate, worker, token, events, settings, admin."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import signal
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from booking.adapters.prometheus import PrometheusTelemetry
from booking.adapters.sandbox.theater import DEMO_COLUMNS, DEMO_ROWS, DEMO_SHOW_ID
from booking.entrypoints import admin
from booking.entrypoints.container import Role, create_container
from booking.entrypoints.identity import mint_token
from booking.entrypoints.logs import configure_logging
from booking.entrypoints.observability import MetricsServer
from booking.entrypoints.server import protocol_for
from booking.entrypoints.settings import (
    AuthMode,
    Settings,
    SettingsError,
    describe,
    env_name,
    load_settings,
)
from booking.entrypoints.workers import Workers
from booking.ports.outbox import OutboxStore
from booking.ports.repository import UnitOfWorkFactory

EXIT_CONFIG = 2
BASE = "/api/v1/bookings"


def _settings(**overrides: object) -> Settings:
    """The settings, with command-line flags written back to the environment so that every
    uvicorn worker process reads the same values."""
    for name, value in overrides.items():
        if value is not None:
            os.environ[env_name(name)] = str(value)
    try:
        return load_settings()
    except SettingsError as exc:
        print(f"booking: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


async def _migrate(settings: Settings) -> str:
    if settings.uses_memory_database:
        return "in-memory database: nothing to migrate"
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        await asyncio.to_thread(Path(settings.data_dir).mkdir, parents=True, exist_ok=True)
    from booking.adapters.sql import migrate

    await migrate.upgrade(url)
    return f"database migrated to {await migrate.current_revision(url)}"


def cmd_migrate(_: argparse.Namespace) -> int:
    settings = _settings()
    configure_logging(settings.log_level, json=settings.log_json)
    print(asyncio.run(_migrate(settings)))
    return 0


# --- serve -------------------------------------------------------------------------------------


async def _free_demo_seats(settings: Settings, count: int) -> list[int]:
    """Seats of the demo show no live booking holds (a restarted SQLite keeps its bookings)."""
    container = create_container(settings, role=Role.CLI)
    try:
        uow = await container.get(UnitOfWorkFactory)
        every = list(range(1, DEMO_ROWS * DEMO_COLUMNS + 1))
        async with uow() as tx:
            claimed = await tx.bookings.live_claims(DEMO_SHOW_ID, every)
        return [s for s in every if s not in claimed][:count]
    finally:
        await container.close()


def _banner(settings: Settings, seats: list[int]) -> str:
    base = settings.resolved_base_url
    url = f"{base}{BASE}"
    body = json.dumps({"showId": DEMO_SHOW_ID, "seatIds": seats or [1, 2]})
    mode = settings.resolved_auth_mode
    if mode is AuthMode.GATEWAY:
        auth = "-H 'X-User-Id: 7' -H 'X-User-Name: 7_demo' -H 'X-User-Roles: ROLE_USER'"
    else:
        token = mint_token(
            settings.jwt_key_material(), 7, ["ROLE_USER"], name="demo", ttl=timedelta(hours=12)
        )
        auth = f"-H {shlex.quote('Authorization: Bearer ' + token)}"
    lines = [
        "",
        f"  Booking Service on {base}   (API docs: {base}/schema)",
        f"  identity: {mode}"
        + (
            "  (dev secret in " + str(settings.dev_secret_path()) + ")"
            if settings.jwt_secret is None and mode is not AuthMode.GATEWAY
            else ""
        ),
    ]
    if settings.is_embedded:
        holds = "Redis" if settings.redis_url else "in-process"
        events = "Kafka" if settings.kafka_bootstrap_servers else "events kept in the outbox"
        lines.append(
            f"  embedded: {settings.resolved_database_url}, {holds} holds, demo show "
            f"{DEMO_SHOW_ID} (seats 1-{DEMO_ROWS * DEMO_COLUMNS}), sandbox checkout, {events}"
        )
    lines += [
        "",
        "  Book two seats as user 7 (token valid 12 h; `booking token --user-id 7` mints more):",
        "",
        f"  curl -s -X POST {url} {auth} -H 'Content-Type: application/json' -d '{body}'",
        "",
        "  then open the paymentUrl of the answer, press Pay, and:",
        f"  curl -s {url}/<bookingId> {auth}",
        "",
    ]
    return "\n".join(lines)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(host=args.host, port=args.port)
    if args.no_workers:
        os.environ[env_name("run_workers")] = "false"
        settings = settings.with_overrides(run_workers=False)
    configure_logging(settings.log_level, json=settings.log_json)
    processes = args.workers or 1
    if processes > 1 and (settings.is_embedded or settings.uses_local_inventory):
        print(
            "booking: --workers > 1 needs the Payment and Theater services (the sandbox "
            "checkout and the demo inventory live in one process)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    if processes > 1 and (settings.redis_url is None or settings.uses_memory_database):
        print("booking: --workers > 1 needs BOOKING_REDIS_URL and a database", file=sys.stderr)
        return EXIT_CONFIG
    print(asyncio.run(_migrate(settings)), file=sys.stderr)
    seats: list[int] = []
    if settings.uses_local_inventory:
        seats = asyncio.run(_free_demo_seats(settings, 2))
    print(_banner(settings, seats), flush=True)

    import uvicorn

    uvicorn.run(
        "booking.entrypoints.app:asgi",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=processes,
        loop="uvloop",
        http=protocol_for(settings.http_one_write),  # httptools; see entrypoints/server.py
        lifespan="on",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=10,
        # Worker processes import the whole service; on a busy host that takes longer than
        # uvicorn's default of 5 s, which would make it kill and respawn them forever.
        timeout_worker_healthcheck=60,
        server_header=False,
        proxy_headers=True,
    )
    return 0


# --- worker ------------------------------------------------------------------------------------


async def _run_worker(settings: Settings, stop_after: float | None) -> None:
    container = create_container(settings, role=Role.WORKER)
    metrics_server: MetricsServer | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        workers = await container.get(Workers)
        workers.start()
        if settings.worker_metrics_port is not None:
            metrics = await container.get(PrometheusTelemetry)
            metrics_server = MetricsServer(metrics, settings.worker_metrics_port, settings.host)
        print("booking worker: outbox relay and reconciler running", file=sys.stderr, flush=True)
        if stop_after is None:
            await stop.wait()
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(stop_after):
                    await stop.wait()
        await workers.stop()
    finally:
        if metrics_server is not None:
            metrics_server.close()
        await container.close()


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings()
    configure_logging(settings.log_level, json=settings.log_json)
    print(asyncio.run(_migrate(settings)), file=sys.stderr)
    asyncio.run(_run_worker(settings, args.stop_after))
    return 0


# --- token, events, settings ------------------------------------------------------------------


def cmd_token(args: argparse.Namespace) -> int:
    settings = _settings()
    roles = [r for r in (args.roles or "ROLE_USER").split(",") if r.strip()]
    print(
        mint_token(
            settings.jwt_key_material(),
            args.user_id,
            roles,
            name=args.name,
            ttl=timedelta(seconds=args.ttl),
        )
    )
    return 0


async def _events(settings: Settings, limit: int, pending: bool) -> list[dict[str, object]]:
    container = create_container(settings, role=Role.CLI)
    try:
        store = await container.get(OutboxStore)
        rows = await store.recent(limit, pending_only=pending)
    finally:
        await container.close()
    return [
        {
            "eventId": row.message_id,
            "kind": row.kind.value,
            "name": row.name,
            "bookingId": row.booking_id,
            "createdAt": row.created_at.isoformat() if row.created_at else None,
            "sentAt": row.sent_at.isoformat() if row.sent_at else None,
            "attempts": row.attempts,
            "lastError": row.last_error,
            "headers": dict(row.headers),
            "payload": dict(row.payload),
        }
        for row in rows
    ]


def cmd_events(args: argparse.Namespace) -> int:
    settings = _settings()
    configure_logging("WARNING")
    rows = asyncio.run(_events(settings, args.limit, args.pending))
    kinds = {"event"} if not args.all else {"event", "action"}
    for row in rows:
        if row["kind"] in kinds:
            print(json.dumps(row, separators=(",", ":")))
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    if args.markdown:  # the README's configuration table
        print("| variable | default | meaning |\n|---|---|---|")
        for name, value, help_text in describe():
            default = value.lower() if value in ("True", "False") else value
            shown = f"`{default}`" if default else "—"
            print(f"| `{name}` | {shown} | {help_text.replace('|', '/')} |")
        return 0
    for name, default, help_text in describe():
        print(f"{name:40} {default or '-':24} {help_text}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="booking", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP service (and its workers)")
    serve.add_argument("--host", help="listen address (BOOKING_HOST)")
    serve.add_argument("--port", type=int, help="listen port (BOOKING_PORT)")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.add_argument(
        "--no-workers", action="store_true", help="do not run the relay and reconciler here"
    )
    serve.set_defaults(run=cmd_serve)

    commands.add_parser("migrate", help="apply the database migrations").set_defaults(
        run=cmd_migrate
    )

    worker = commands.add_parser("worker", help="run the outbox relay and the reconciler")
    worker.add_argument("--stop-after", type=float, help=argparse.SUPPRESS)
    worker.set_defaults(run=cmd_worker)

    token = commands.add_parser("token", help="mint a JWT with the platform's claims")
    token.add_argument("--user-id", type=int, required=True)
    token.add_argument("--roles", help="comma-separated, e.g. ROLE_USER,ROLE_ADMIN")
    token.add_argument("--name", help="the name part of `{id}_{name}`")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    token.set_defaults(run=cmd_token)

    events = commands.add_parser("events", help="print the outbox's events (newest first)")
    events.add_argument("--limit", type=int, default=50)
    events.add_argument("--pending", action="store_true", help="only undispatched rows")
    events.add_argument("--all", action="store_true", help="after-commit actions too")
    events.set_defaults(run=cmd_events)

    settings = commands.add_parser("settings", help="list every BOOKING_* setting")
    settings.add_argument("--markdown", action="store_true", help="as a Markdown table")
    settings.set_defaults(run=cmd_settings)

    admin.add_commands(commands, _settings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
