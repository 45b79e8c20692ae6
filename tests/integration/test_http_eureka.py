"""EurekaServiceDirectory against a real server speaking Eureka's REST API."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Iterator

import pytest

from booking.adapters.http._common import RetryPolicy
from booking.adapters.http.directory import StaticServiceDirectory
from booking.adapters.http.eureka import EurekaInstance, EurekaServiceDirectory
from booking.adapters.http.payment import HttpPaymentGateway
from booking.domain.booking import PaymentStatus
from booking.domain.identity import Principal
from booking.domain.money import Money
from booking.ports.errors import DependencyUnavailable
from tests.support.peers import EurekaPeer, PaymentPeer

FAST_RETRY = RetryPolicy(
    attempts=2, timeout=5.0, wait_initial=0.01, wait_max=0.05, wait_jitter=0.01
)
WAIT_SECONDS = 10.0


@pytest.fixture
def eureka(eureka_server: EurekaPeer) -> Iterator[EurekaPeer]:
    eureka_server.reset()
    yield eureka_server
    eureka_server.reset()


def booking_instance(port: int | None = None) -> EurekaInstance:
    return EurekaInstance(
        port=port or random.randrange(20_000, 30_000),
        host="booking-1.internal",
        ip_addr="10.0.0.5",
        health_path="/health",
        status_path="/info",
    )


def directory(eureka: EurekaPeer, instance: EurekaInstance | None = None, **kwargs: object):
    return EurekaServiceDirectory(
        eureka.service_url,
        instance,
        timeout=0.5,
        retry=FAST_RETRY,
        **kwargs,  # type: ignore[arg-type]
    )


async def wait_for(condition, what: str) -> None:
    """Poll `condition` (bounded) until it holds; fail naming `what` otherwise."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        await asyncio.sleep(0.05)


async def test_start_registers_booking_service_with_its_urls(eureka: EurekaPeer) -> None:
    """start() registers BOOKING-SERVICE with instance id, host, port, health and status URLs."""
    instance = booking_instance(8080)
    registry = directory(eureka, instance, renew_interval=30)
    await registry.start()
    try:
        [(instance_id, entry)] = eureka.registry()["BOOKING-SERVICE"].items()
        registered = entry["instance"]
        assert instance_id == "booking-1.internal:booking-service:8080"
        assert registered["hostName"] == "booking-1.internal"
        assert registered["ipAddr"] == "10.0.0.5"
        assert registered["port"] == {"$": 8080, "@enabled": "true"}
        assert registered["status"] == "UP"
        assert registered["vipAddress"] == "booking-service"
        assert registered["healthCheckUrl"] == "http://booking-1.internal:8080/health"
        assert registered["statusPageUrl"] == "http://booking-1.internal:8080/info"
        assert registered["dataCenterInfo"]["name"] == "MyOwn"
    finally:
        await registry.close()


async def test_the_lease_is_renewed_until_close_deregisters(eureka: EurekaPeer) -> None:
    """The background task renews the lease; close() stops it and removes the instance."""
    registry = directory(eureka, booking_instance(), renew_interval=0.05)
    await registry.start()

    def renewals() -> int:
        apps = eureka.registry().get("BOOKING-SERVICE", {})
        return sum(entry["renewals"] for entry in apps.values())

    await wait_for(lambda: renewals() >= 2, "two lease renewals")
    await registry.close()
    assert "BOOKING-SERVICE" not in eureka.registry()
    await registry.close()  # idempotent


async def test_a_forgotten_instance_registers_again(eureka: EurekaPeer) -> None:
    """When Eureka answers 404 to a renewal (it forgot us), the instance registers again."""
    registry = directory(eureka, booking_instance())
    try:
        await registry.register()
        eureka.reset()
        await registry.renew()
        assert len(eureka.registry()["BOOKING-SERVICE"]) == 1
    finally:
        await registry.close()


async def test_start_survives_an_unreachable_registry() -> None:
    """A registry that is down neither stops start() nor close()."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    registry = EurekaServiceDirectory(
        f"http://127.0.0.1:{port}/eureka",
        booking_instance(),
        timeout=0.5,
        retry=FAST_RETRY,
        renew_interval=0.05,
    )
    await registry.start()
    await registry.close()
    with pytest.raises(DependencyUnavailable):
        await registry.resolve("payment-service")


async def test_resolve_answers_up_instances_only_and_in_turn(eureka: EurekaPeer) -> None:
    """Only UP instances resolve; several are answered in turn; none is DependencyUnavailable."""
    first = eureka.register("payment-service", "10.0.0.7", 8084)
    eureka.register("payment-service", "10.0.0.8", 8084)
    eureka.register("theater-service", "10.0.0.9", 8083, status="STARTING")
    eureka.set_status("payment-service", first, "OUT_OF_SERVICE")
    eureka.register("payment-service", "10.0.0.10", 9000)
    registry = directory(eureka, cache_ttl=0.0)
    try:
        answers = {await registry.resolve("payment-service") for _ in range(4)}
        assert answers == {"http://10.0.0.8:8084", "http://10.0.0.10:9000"}
        with pytest.raises(DependencyUnavailable) as caught:
            await registry.resolve("theater-service")
        assert caught.value.dependency == "theater-service"
        with pytest.raises(DependencyUnavailable):
            await registry.resolve("nobody-service")
    finally:
        await registry.close()


async def test_resolutions_are_cached_and_outlive_a_registry_outage(eureka: EurekaPeer) -> None:
    """A cached answer is reused; when Eureka fails, the last known instances still resolve."""
    eureka.register("theater-service", "10.0.0.9", 8083)
    registry = directory(eureka, cache_ttl=60.0)
    try:
        assert await registry.resolve("theater-service") == "http://10.0.0.9:8083"
        eureka.clear_requests()
        assert await registry.resolve("theater-service") == "http://10.0.0.9:8083"
        assert eureka.requests("/eureka/apps/") == []
    finally:
        await registry.close()

    stale = directory(eureka, cache_ttl=0.0)
    try:
        assert await stale.resolve("theater-service") == "http://10.0.0.9:8083"
        eureka.add_fault("status", "/eureka/apps/THEATER-SERVICE", status=503)
        assert await stale.resolve("theater-service") == "http://10.0.0.9:8083"
        assert len(eureka.requests("/eureka/apps/THEATER-SERVICE")) > 1
    finally:
        eureka.clear_faults()
        await stale.close()


async def test_the_payment_gateway_finds_its_peer_through_eureka(
    eureka: EurekaPeer, payment_service: PaymentPeer
) -> None:
    """HttpPaymentGateway resolves payment-service in Eureka and talks to it."""
    eureka.register("payment-service", "127.0.0.1", payment_service.port)
    registry = directory(eureka)
    gateway = HttpPaymentGateway(directory=registry, timeout=1.0)
    try:
        caller = Principal.of(7, "7_john", ["USER"])
        session = await gateway.create_checkout(random.randrange(1, 2**40), Money(10_000), caller)
        assert (await gateway.verify(session.session_id, caller)).status is PaymentStatus.PENDING
    finally:
        await gateway.aclose()
        await registry.close()


async def test_static_directory() -> None:
    """Plain base URLs resolve as configured (no trailing slash); others are unavailable."""
    static = StaticServiceDirectory({"payment-service": "http://payment:8084/"})
    assert await static.resolve("payment-service") == "http://payment:8084"
    with pytest.raises(DependencyUnavailable):
        await static.resolve("theater-service")
    await static.start()
    await static.close()
