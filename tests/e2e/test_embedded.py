"""The embedded default as `make serve` runs it: SQLite, in-process holds, the demo show and the
sandbox checkout page, paid in a real (headless) Chromium."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, async_playwright

from .conftest import BASE, BookingServer, run_cli, wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedded")


@pytest.fixture(scope="module")
def env(workdir: Path) -> dict[str, str]:
    return {"BOOKING_DATA_DIR": str(workdir / "data"), "BOOKING_RELAY_INTERVAL_SECONDS": "0.1"}


@pytest.fixture(scope="module")
def server(workdir: Path, env: dict[str, str]) -> Iterator[BookingServer]:
    """`booking serve` with no settings at all but its data directory."""
    booking_server = BookingServer(workdir, env)
    booking_server.start()
    try:
        yield booking_server
    finally:
        booking_server.stop()


@pytest.fixture(scope="module")
def user_token(workdir: Path, env: dict[str, str], server: BookingServer) -> str:
    """A token from `booking token`, signed with the server's persisted dev secret."""
    result = run_cli(["token", "--user-id", "7"], env, workdir)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-browser", pytrace=False)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright (scripts/ensure-browser installs it)."""
    _require_chromium()
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def _create(server: BookingServer, user_token: str, seats: list[int]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        response = await http.post(
            BASE,
            json={"showId": 1, "seatIds": seats},
            headers={"Authorization": f"Bearer {user_token}"},
        )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _status(server: BookingServer, user_token: str, booking_id: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        response = await http.get(
            f"{BASE}/{booking_id}", headers={"Authorization": f"Bearer {user_token}"}
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_banner_curl_books_as_printed(server: BookingServer) -> None:
    """The curl line `booking serve` prints, pasted into a shell, books two demo seats."""
    banner = server.banner()
    line = next(
        ln.strip() for ln in banner.splitlines() if ln.strip().startswith("curl -s -X POST")
    )
    assert "Authorization: Bearer " in line
    result = subprocess.run(  # noqa: S603 - the printed command, as a user would paste it
        ["/bin/sh", "-c", line], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    booking = json.loads(result.stdout)
    assert booking["status"] == "PENDING"
    assert booking["showId"] == 1
    assert re.match(rf"{re.escape(server.url)}/sandbox/checkout/cs_sandbox_", booking["paymentUrl"])


async def test_pay_in_the_browser_confirms(
    server: BookingServer, user_token: str, browser: Browser
) -> None:
    """Open the paymentUrl in Chromium, click Pay: the page and the API say CONFIRMED."""
    booking = await _create(server, user_token, [50, 51])
    page = await browser.new_page()
    try:
        await page.goto(booking["paymentUrl"])
        assert await page.text_content("#booking-status") == "PENDING"
        assert await page.text_content("#amount") == "₹500.00"
        await page.click("#pay")
        await page.wait_for_selector("#booking-status:has-text('CONFIRMED')", timeout=10_000)
        assert await page.text_content("#payment-status") == "COMPLETED"
        assert await page.query_selector("#pay") is None
    finally:
        await page.close()
    assert (await _status(server, user_token, booking["bookingId"]))["status"] == "CONFIRMED"


async def test_decline_in_the_browser_fails(
    server: BookingServer, user_token: str, browser: Browser
) -> None:
    """Click Decline: the booking is FAILED (PAYMENT_FAILED) and its seats are free again."""
    booking = await _create(server, user_token, [60])
    page = await browser.new_page()
    try:
        await page.goto(booking["paymentUrl"])
        await page.click("#decline")
        await page.wait_for_selector("#booking-status:has-text('FAILED')", timeout=10_000)
    finally:
        await page.close()
    found = await _status(server, user_token, booking["bookingId"])
    assert found["status"] == "FAILED"
    assert found["failureReason"] == "PAYMENT_FAILED"

    async def rebooked() -> bool:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            again = await http.post(
                BASE,
                json={"showId": 1, "seatIds": [60]},
                headers={"Authorization": f"Bearer {user_token}"},
            )
        assert again.status_code in (201, 409), again.text
        return again.status_code == 201

    await wait_for(rebooked, what="seat 60 free again after the decline")


async def test_events_are_kept_in_the_outbox(
    server: BookingServer, user_token: str, workdir: Path, env: dict[str, str]
) -> None:
    """Without Kafka, `booking events` prints the booking_success event of a paid booking."""
    booking = await _create(server, user_token, [70])
    async with httpx.AsyncClient(timeout=10) as http:
        await http.post(f"{booking['paymentUrl']}/pay")
    result = run_cli(["events"], env, workdir)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    mine = [e for e in events if e["bookingId"] == booking["bookingId"]]
    assert [e["name"] for e in mine] == ["booking_success"]
    assert mine[0]["headers"]["__TypeId__"].endswith("BookingSuccessEvent")
    assert mine[0]["payload"]["totalAmount"] == 250.0


def test_stops_cleanly_and_keeps_its_data(
    server: BookingServer, workdir: Path, env: dict[str, str], user_token: str
) -> None:
    """SIGTERM ends the server with exit 0 and no traceback; a restart sees the bookings."""
    server.stop()
    assert server.stopped_cleanly(), server.log()[-3000:]
    again = BookingServer(workdir, env)
    again.start()
    try:
        listed = httpx.get(
            f"{again.url}{BASE}", headers={"Authorization": f"Bearer {user_token}"}, timeout=10
        )
        assert listed.status_code == 200
        assert len(listed.json()["items"]) >= 3
    finally:
        again.stop()
    assert again.stopped_cleanly(), again.log()[-3000:]
