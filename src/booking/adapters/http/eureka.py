"""EurekaServiceDirectory: register, renew and resolve through Eureka's REST API over httpx."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

from booking.adapters.http._common import RetryPolicy, TransientStatus, encode_json, send_retrying
from booking.ports.errors import DependencyUnavailable

log = structlog.get_logger(__name__)

REGISTRY = "eureka"
_JSON = {"Accept": "application/json", "Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class EurekaInstance:
    """This process as Eureka knows it: `booking-service` at host:port, with its health URLs."""

    port: int
    host: str = field(default_factory=socket.gethostname)
    app: str = "booking-service"
    ip_addr: str | None = None
    instance_id: str | None = None
    health_path: str = "/actuator/health"
    status_path: str = "/actuator/info"
    home_path: str = "/"
    lease_renewal_seconds: int = 30
    lease_duration_seconds: int = 90
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.instance_id or f"{self.host}:{self.app}:{self.port}"

    @property
    def app_name(self) -> str:
        return self.app.upper()

    def document(self, now_ms: int) -> dict[str, Any]:
        """The registration body Eureka expects (`{"instance": {...}}`)."""
        base = f"http://{self.host}:{self.port}"
        return {
            "instance": {
                "instanceId": self.id,
                "hostName": self.host,
                "app": self.app_name,
                "ipAddr": self.ip_addr or self.host,
                "vipAddress": self.app,
                "secureVipAddress": self.app,
                "status": "UP",
                "overriddenStatus": "UNKNOWN",
                "port": {"$": self.port, "@enabled": "true"},
                "securePort": {"$": 443, "@enabled": "false"},
                "homePageUrl": base + self.home_path,
                "statusPageUrl": base + self.status_path,
                "healthCheckUrl": base + self.health_path,
                "dataCenterInfo": {
                    "@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo",
                    "name": "MyOwn",
                },
                "leaseInfo": {
                    "renewalIntervalInSecs": self.lease_renewal_seconds,
                    "durationInSecs": self.lease_duration_seconds,
                },
                "metadata": dict(self.metadata),
                "lastUpdatedTimestamp": str(now_ms),
                "lastDirtyTimestamp": str(now_ms),
            }
        }


class EurekaServiceDirectory:
    """ServiceDirectory over Eureka's REST API (`/eureka/apps/...`).

    `eureka_url` is the service URL as Spring spells it (`http://host:8761/eureka`), or several
    separated by commas, tried in order. With an `instance`, `start()` registers it and renews
    its lease every `renew_interval` seconds (default: the lease's renewal interval;
    re-registering when Eureka answers 404), and
    `close()` de-registers it; without one the directory only resolves. Resolution answers UP
    instances in turn, caches them for `cache_ttl` seconds, and falls back on the last known
    instances while the registry is unreachable.
    """

    def __init__(
        self,
        eureka_url: str,
        instance: EurekaInstance | None = None,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = 5.0,
        cache_ttl: float = 10.0,
        retry: RetryPolicy | None = None,
        renew_interval: float | None = None,
    ) -> None:
        self._zones = [url.strip().rstrip("/") for url in eureka_url.split(",") if url.strip()]
        if not self._zones:
            raise ValueError("eureka_url names no Eureka server")
        self._instance = instance
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient()
        self._timeout = timeout
        self._cache_ttl = cache_ttl
        self._retry = retry if retry is not None else RetryPolicy()
        self._cache: dict[str, tuple[float, list[str]]] = {}
        self._turns: dict[str, itertools.count[int]] = {}
        self._renew_interval = renew_interval
        self._renewer: asyncio.Task[None] | None = None
        self._closed = False

    async def resolve(self, service: str) -> str:
        now = time.monotonic()
        cached = self._cache.get(service)
        urls: list[str] | None = cached[1] if cached and cached[0] > now else None
        if urls is None:
            try:
                urls = await self._fetch(service)
                self._cache[service] = (now + self._cache_ttl, urls)
            except DependencyUnavailable:
                if not cached or not cached[1]:
                    raise
                log.warning("eureka.resolve.stale", service=service)
                urls = cached[1]
        if not urls:
            raise DependencyUnavailable(f"no UP instance of {service}", dependency=service)
        turn = next(self._turns.setdefault(service, itertools.count()))
        return urls[turn % len(urls)]

    async def _fetch(self, service: str) -> list[str]:
        response = await self._call("GET", f"/apps/{service.upper()}", dependency=service)
        if response.status_code == 404:
            return []
        if not response.is_success:
            raise DependencyUnavailable(
                f"eureka answered {response.status_code} for {service}", dependency=service
            )
        try:
            application = response.json()["application"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DependencyUnavailable(
                f"unreadable eureka answer for {service}", dependency=service
            ) from exc
        instances = application.get("instance", []) if isinstance(application, dict) else []
        # Eureka's JSON renders a one-element list as a bare object.
        if isinstance(instances, dict):
            instances = [instances]
        return [url for item in instances if (url := _base_url(item)) is not None]

    async def register(self) -> None:
        if self._instance is None:
            return
        instance = self._instance
        response = await self._call(
            "POST",
            f"/apps/{instance.app_name}",
            json=instance.document(int(time.time() * 1000)),
        )
        if response.status_code not in (200, 204):
            raise DependencyUnavailable(
                f"eureka refused the registration: {response.status_code}", dependency=REGISTRY
            )
        log.info("eureka.registered", app=instance.app_name, instance_id=instance.id)

    async def renew(self) -> None:
        if self._instance is None:
            return
        instance = self._instance
        response = await self._call(
            "PUT", f"/apps/{instance.app_name}/{instance.id}", params={"status": "UP"}
        )
        if response.status_code == 404:
            log.info("eureka.renew.unknown_instance", instance_id=instance.id)
            await self.register()
            return
        if not response.is_success:
            raise DependencyUnavailable(
                f"eureka refused the renewal: {response.status_code}", dependency=REGISTRY
            )

    async def deregister(self) -> None:
        if self._instance is None:
            return
        instance = self._instance
        response = await self._call("DELETE", f"/apps/{instance.app_name}/{instance.id}")
        if response.status_code not in (200, 204, 404):
            raise DependencyUnavailable(
                f"eureka refused the de-registration: {response.status_code}",
                dependency=REGISTRY,
            )
        log.info("eureka.deregistered", app=instance.app_name, instance_id=instance.id)

    async def start(self) -> None:
        if self._instance is None or self._renewer is not None or self._closed:
            return
        try:
            await self.register()
        except DependencyUnavailable as exc:
            # The service starts anyway; the renewal loop registers once Eureka is back.
            log.warning("eureka.register.failed", error=str(exc))
        self._renewer = asyncio.create_task(self._renew_forever(), name="eureka-renewal")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        try:
            await self.deregister()
        except DependencyUnavailable as exc:
            log.warning("eureka.deregister.failed", error=str(exc))
        if self._owns_client:
            await self._client.aclose()

    async def _renew_forever(self) -> None:
        assert self._instance is not None
        interval = self._renew_interval or float(self._instance.lease_renewal_seconds)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.renew()
            except DependencyUnavailable as exc:
                log.warning("eureka.renew.failed", error=str(exc))

    async def _call(
        self,
        method: str,
        path: str,
        *,
        dependency: str = REGISTRY,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One registry call (idempotent, retried), tried on each zone until one answers."""
        if self._client.is_closed:
            raise DependencyUnavailable("the Eureka directory is closed", dependency=dependency)
        last: Exception | None = None
        for zone in self._zones:
            url = httpx.URL(zone + path, params=params)
            try:
                return await send_retrying(
                    self._client,
                    method,
                    str(url),
                    headers=_JSON,
                    request_timeout=self._timeout,
                    policy=self._retry,
                    json=None if json is None else encode_json(json),
                )
            except (httpx.HTTPError, TransientStatus) as exc:
                last = exc
        raise DependencyUnavailable(
            f"eureka unreachable for {method} {path}", dependency=dependency
        ) from last


def _base_url(instance: Any) -> str | None:
    """`scheme://host:port` of an UP instance in Eureka's JSON; None for others."""
    if not isinstance(instance, dict) or str(instance.get("status", "")).upper() != "UP":
        return None
    host = instance.get("hostName") or instance.get("ipAddr")
    if not host:
        return None
    for key, scheme in (("securePort", "https"), ("port", "http")):
        port = instance.get(key)
        if isinstance(port, dict) and str(port.get("@enabled", "true")).lower() == "true":
            number = _port_number(port)
            if number is not None:
                return f"{scheme}://{host}:{number}"
    return None


def _port_number(port: dict[str, Any]) -> int | None:
    try:
        return int(port.get("$", 0)) or None
    except (TypeError, ValueError):
        return None
