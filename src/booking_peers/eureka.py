"""A small server speaking Eureka's REST API (the part service registration and lookup use).

- `POST /eureka/apps/{APP}` with `{"instance": {...}}` registers (204);
- `PUT /eureka/apps/{APP}/{id}` renews the lease (200, or 404 when unknown: re-register);
- `DELETE /eureka/apps/{APP}/{id}` cancels it (200, 404 when unknown);
- `PUT /eureka/apps/{APP}/{id}/status?value=OUT_OF_SERVICE` overrides the status;
- `GET /eureka/apps/{APP}` and `GET /eureka/apps` answer JSON (404 for an unknown app).
Leases lapse after the instance's `leaseInfo.durationInSecs` without a renewal.

Control endpoints (under `/__control`): the registry with renewal counts, reset.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar, Request, Response, delete, get, post, put
from litestar.handlers import HTTPRouteHandler

from booking_peers.common import json_body, json_response
from booking_peers.faults import FaultInjector

DEFAULT_LEASE_SECONDS = 90.0


@dataclass(slots=True)
class Lease:
    instance: dict[str, Any]
    registered_at: float
    renewed_at: float
    renewals: int = 0
    status_override: str | None = None

    @property
    def duration(self) -> float:
        lease = self.instance.get("leaseInfo") or {}
        try:
            return float(lease.get("durationInSecs", DEFAULT_LEASE_SECONDS))
        except (TypeError, ValueError):
            return DEFAULT_LEASE_SECONDS

    def rendered(self) -> dict[str, Any]:
        status = self.status_override or self.instance.get("status", "UP")
        lease = dict(self.instance.get("leaseInfo") or {})
        lease.update(
            registrationTimestamp=int(self.registered_at * 1000),
            lastRenewalTimestamp=int(self.renewed_at * 1000),
        )
        return {**self.instance, "status": status, "leaseInfo": lease}


@dataclass(slots=True)
class Registry:
    apps: dict[str, dict[str, Lease]] = field(default_factory=dict)

    def evict(self) -> None:
        now = time.time()
        for app in list(self.apps):
            leases = self.apps[app]
            for instance_id in [
                i for i, lease in leases.items() if now > lease.renewed_at + lease.duration
            ]:
                del leases[instance_id]
            if not leases:
                del self.apps[app]

    def application(self, app: str) -> dict[str, Any]:
        return {
            "name": app,
            "instance": [lease.rendered() for lease in self.apps.get(app, {}).values()],
        }


def build_routes(registry: Registry) -> list[HTTPRouteHandler]:
    @post("/eureka/apps/{app:str}", status_code=200)  # answers 204 itself
    async def register(request: Request[Any, Any, Any], app: str) -> Response[Any]:
        body = await json_body(request)
        instance = body.get("instance") if isinstance(body, dict) else None
        if not isinstance(instance, dict):
            return json_response(400)
        instance_id = instance.get("instanceId") or instance.get("hostName")
        if not instance_id:
            return json_response(400)
        now = time.time()
        name = app.upper()
        instance = {**instance, "app": name, "instanceId": str(instance_id)}
        registry.apps.setdefault(name, {})[str(instance_id)] = Lease(instance, now, now)
        return json_response(204)

    @put("/eureka/apps/{app:str}/{instance_id:str}", status_code=200)
    async def renew(app: str, instance_id: str) -> Response[Any]:
        registry.evict()
        lease = registry.apps.get(app.upper(), {}).get(instance_id)
        if lease is None:
            return json_response(404)
        lease.renewed_at = time.time()
        lease.renewals += 1
        return json_response(200)

    @put("/eureka/apps/{app:str}/{instance_id:str}/status", status_code=200)
    async def override_status(
        request: Request[Any, Any, Any], app: str, instance_id: str
    ) -> Response[Any]:
        lease = registry.apps.get(app.upper(), {}).get(instance_id)
        if lease is None:
            return json_response(404)
        lease.status_override = str(request.query_params.get("value", "UP")).upper()
        return json_response(200)

    @delete("/eureka/apps/{app:str}/{instance_id:str}", status_code=200)
    async def cancel(app: str, instance_id: str) -> Response[Any]:
        leases = registry.apps.get(app.upper(), {})
        if leases.pop(instance_id, None) is None:
            return json_response(404)
        if not leases:
            registry.apps.pop(app.upper(), None)
        return json_response(200)

    @get("/eureka/apps/{app:str}")
    async def application(app: str) -> Response[Any]:
        registry.evict()
        if app.upper() not in registry.apps:
            return json_response(404)
        return json_response(200, {"application": registry.application(app.upper())})

    @get("/eureka/apps")
    async def applications() -> Response[Any]:
        registry.evict()
        return json_response(
            200,
            {
                "applications": {
                    "versions__delta": "1",
                    "apps__hashcode": "",
                    "application": [registry.application(app) for app in sorted(registry.apps)],
                }
            },
        )

    @get("/actuator/health")
    async def health() -> Response[Any]:
        return json_response(200, {"status": "UP"})

    @get("/__control/registry")
    async def listing() -> Response[Any]:
        registry.evict()
        return json_response(
            200,
            {
                app: {
                    instance_id: {
                        "renewals": lease.renewals,
                        "status": lease.rendered()["status"],
                        "instance": lease.instance,
                    }
                    for instance_id, lease in leases.items()
                }
                for app, leases in registry.apps.items()
            },
        )

    @post("/__control/reset", status_code=200)
    async def reset() -> Response[Any]:
        registry.apps.clear()
        return json_response(200, {"reset": True})

    return [
        register,
        renew,
        override_status,
        cancel,
        application,
        applications,
        health,
        listing,
        reset,
    ]


def create_app() -> FaultInjector:
    """The Eureka stand-in as an ASGI app, wrapped with switchable faults."""
    registry = Registry()
    app = Litestar(route_handlers=build_routes(registry), openapi_config=None)
    app.state.registry = registry
    return FaultInjector(app)
