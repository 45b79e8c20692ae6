"""StaticServiceDirectory: peers at fixed, configured base URLs (no registry)."""

from __future__ import annotations

from collections.abc import Mapping

from booking.ports.errors import DependencyUnavailable


class StaticServiceDirectory:
    """ServiceDirectory over a fixed map of service name → base URL.

    `resolve` answers the configured URL (trailing slash dropped) or raises
    `DependencyUnavailable` for a name it was not given; registering does nothing.
    """

    def __init__(self, base_urls: Mapping[str, str]) -> None:
        self._base_urls = {name: url.rstrip("/") for name, url in base_urls.items() if url}

    async def resolve(self, service: str) -> str:
        try:
            return self._base_urls[service]
        except KeyError:
            raise DependencyUnavailable(
                f"no base URL configured for {service}", dependency=service
            ) from None

    async def register(self) -> None:
        return None

    async def renew(self) -> None:
        return None

    async def deregister(self) -> None:
        return None

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None
