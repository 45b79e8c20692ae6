"""Test fixtures: the platform's peer services (Payment, Theater, Eureka) as real server processes.

Each fixture starts `python -m booking_peers <service> --port 0` in a subprocess (uvicorn on a
free port), waits until it answers, and kills it at the end of the session. The objects carry
`.url` and helpers for the control endpoints (faults, request log, seeding).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

START_TIMEOUT_SECONDS = 60.0
_P = TypeVar("_P", bound="PeerProcess")


class PeerProcess:
    """One peer service in its own process, and its generic control endpoints."""

    kind = ""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._port_file = workdir / f"{self.kind}.port"
        self._log_file = workdir / f"{self.kind}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.port = 0
        self.http: httpx.Client | None = None

    def start(self) -> None:
        self._port_file.unlink(missing_ok=True)
        with self._log_file.open("wb") as log:
            self._process = subprocess.Popen(  # noqa: S603
                [
                    sys.executable,
                    "-m",
                    "booking_peers",
                    self.kind,
                    "--port",
                    "0",
                    "--port-file",
                    str(self._port_file),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._port_file.exists():
            self._check_alive()
            if time.monotonic() > deadline:
                self._fail("did not report its port")
            time.sleep(0.05)
        self.port = int(self._port_file.read_text())
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.url, timeout=5.0)
        while True:
            self._check_alive()
            try:
                if self.http.get("/__control/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self._fail("did not become ready")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.http is not None:
            self.http.close()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)

    def _check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            self._fail(f"exited with code {self._process.returncode}")

    def _fail(self, why: str) -> None:
        tail = self._log_file.read_text(errors="replace")[-3000:] if self._log_file.exists() else ""
        self.stop()
        pytest.fail(f"the {self.kind} peer service {why}; its log:\n{tail}", pytrace=False)

    @property
    def client(self) -> httpx.Client:
        assert self.http is not None, f"the {self.kind} peer is not started"
        return self.http

    def _ok(self, response: httpx.Response) -> Any:
        assert response.is_success, f"{self.kind} control call failed: {response.text}"
        return response.json() if response.content else None

    # Faults and the request log (booking_peers.faults).
    def add_fault(
        self,
        kind: str,
        path: str = "",
        *,
        method: str | None = None,
        seconds: float = 0.0,
        status: int = 503,
        body: Any = None,
        phase: str = "before",
        times: int | None = None,
    ) -> None:
        """Misbehave on requests whose path contains `path` (see booking_peers.faults)."""
        rule = {
            "kind": kind,
            "path": path,
            "method": method,
            "seconds": seconds,
            "status": status,
            "body": body,
            "phase": phase,
            "times": times,
        }
        self._ok(self.client.post("/__control/faults", json=rule))

    def clear_faults(self) -> None:
        self._ok(self.client.delete("/__control/faults"))

    def requests(self, path_contains: str = "", method: str | None = None) -> list[dict[str, Any]]:
        """The requests received (method, path, lower-cased headers, JSON body), oldest first."""
        seen: list[dict[str, Any]] = self._ok(self.client.get("/__control/requests"))
        return [
            r
            for r in seen
            if path_contains in r["path"] and (method is None or r["method"] == method.upper())
        ]

    def clear_requests(self) -> None:
        self._ok(self.client.delete("/__control/requests"))

    def reset(self) -> None:
        """Forget every fault, logged request and piece of state."""
        self.clear_faults()
        self.clear_requests()
        self._ok(self.client.post("/__control/reset"))


class PaymentPeer(PeerProcess):
    """The Payment Service stand-in (booking_peers.payment)."""

    kind = "payment"

    def sessions(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._ok(self.client.get("/__control/sessions"))
        return result

    def sessions_for(self, booking_id: int) -> list[dict[str, Any]]:
        return [s for s in self.sessions() if s["booking_id"] == booking_id]

    def session(self, session_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._ok(self.client.get(f"/__control/sessions/{session_id}"))
        return result

    def seed_session(
        self,
        booking_id: int,
        amount: float,
        *,
        session_id: str | None = None,
        user_id: int = 1,
        state: str = "unpaid",
    ) -> dict[str, Any]:
        """Open a checkout directly (state: unpaid, paid, declined, expired)."""
        body = {
            "bookingId": booking_id,
            "amount": amount,
            "userId": user_id,
            "sessionId": session_id,
            "state": state,
        }
        result: dict[str, Any] = self._ok(self.client.post("/__control/sessions", json=body))
        return result

    def pay(self, session_id: str) -> None:
        self._ok(self.client.post(f"/__control/sessions/{session_id}/pay"))

    def decline(self, session_id: str) -> None:
        self._ok(self.client.post(f"/__control/sessions/{session_id}/decline"))

    def expire(self, session_id: str) -> None:
        self._ok(self.client.post(f"/__control/sessions/{session_id}/expire"))

    def gateway_errors(self, count: int) -> None:
        """The next `count` create/verify calls meet the gateway's transient error (400 FAILED)."""
        self._ok(self.client.post("/__control/gateway-errors", json={"count": count}))

    def tamper(self, *, booking_id: int | None = None, amount: float | None = None) -> None:
        """Answers name this booking id / amount instead of the checkout's own."""
        body = {"bookingId": booking_id, "amount": amount}
        self._ok(self.client.post("/__control/tamper", json=body))

    def untamper(self) -> None:
        self._ok(self.client.delete("/__control/tamper"))

    def pending_timeout(self, seconds: float | None) -> None:
        """Their expiry job: PENDING payments older than this verify as FAILED."""
        self._ok(self.client.post("/__control/settings", json={"pendingTimeoutSeconds": seconds}))


class TheaterPeer(PeerProcess):
    """The Theater Service stand-in (booking_peers.theater)."""

    kind = "theater"

    def seed_show(self, show_id: int, seats: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A show with these seats: `{"seatId", "seatNumber", "seatType", "price", "status"}`."""
        result: list[dict[str, Any]] = self._ok(
            self.client.post("/__control/shows", json={"showId": show_id, "seats": seats})
        )
        return result

    def seed_grid(
        self, show_id: int, *, rows: int = 3, columns: int = 5, first_seat_id: int | None = None
    ) -> list[dict[str, Any]]:
        """A show of rows × columns AVAILABLE seats (SILVER, GOLD, PLATINUM by row)."""
        body: dict[str, Any] = {"showId": show_id, "rows": rows, "columns": columns}
        if first_seat_id is not None:
            body["firstSeatId"] = first_seat_id
        result: list[dict[str, Any]] = self._ok(self.client.post("/__control/shows", json=body))
        return result

    def seat_statuses(self, show_id: int) -> dict[int, str]:
        seats = self._ok(self.client.get(f"/__control/shows/{show_id}"))
        return {s["showSeatId"]: s["status"] for s in seats}

    def set_status(self, show_id: int, seat_id: int, status: str) -> None:
        self._ok(
            self.client.post(f"/__control/shows/{show_id}/seats/{seat_id}", json={"status": status})
        )


class EurekaPeer(PeerProcess):
    """The Eureka stand-in (booking_peers.eureka); `.url` + `/eureka` is the service URL."""

    kind = "eureka"

    @property
    def service_url(self) -> str:
        return f"{self.url}/eureka"

    def registry(self) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = self._ok(self.client.get("/__control/registry"))
        return result

    def register(self, app: str, host: str, port: int, *, status: str = "UP") -> str:
        """Register a fake instance (as another service would); answers its instance id."""
        instance_id = f"{host}:{app}:{port}"
        instance = {
            "instanceId": instance_id,
            "hostName": host,
            "app": app.upper(),
            "ipAddr": host,
            "status": status,
            "port": {"$": port, "@enabled": "true"},
            "securePort": {"$": 443, "@enabled": "false"},
            "dataCenterInfo": {
                "@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo",
                "name": "MyOwn",
            },
            "leaseInfo": {"renewalIntervalInSecs": 30, "durationInSecs": 90},
        }
        response = self.client.post(f"/eureka/apps/{app.upper()}", json={"instance": instance})
        assert response.status_code == 204, response.text
        return instance_id

    def set_status(self, app: str, instance_id: str, status: str) -> None:
        response = self.client.put(
            f"/eureka/apps/{app.upper()}/{instance_id}/status", params={"value": status}
        )
        assert response.is_success, response.text


def _started(peer: _P) -> Iterator[_P]:
    peer.start()
    try:
        yield peer
    finally:
        peer.stop()


@pytest.fixture(scope="session")
def payment_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaymentPeer]:
    """The Payment Service stand-in, running for the whole session."""
    yield from _started(PaymentPeer(tmp_path_factory.mktemp("payment-peer")))


@pytest.fixture(scope="session")
def theater_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TheaterPeer]:
    """The Theater Service stand-in, running for the whole session."""
    yield from _started(TheaterPeer(tmp_path_factory.mktemp("theater-peer")))


@pytest.fixture(scope="session")
def eureka_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EurekaPeer]:
    """A server speaking Eureka's REST API, running for the whole session."""
    yield from _started(EurekaPeer(tmp_path_factory.mktemp("eureka-peer")))
