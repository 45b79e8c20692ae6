"""ServiceDirectory: where the platform's peer services live, and announcing this instance."""

from __future__ import annotations

from typing import Protocol


class ServiceDirectory(Protocol):
    """Contract:

    - `resolve(service)` answers the base URL (`scheme://host:port`, no trailing slash) of one
      UP instance of the named service (`payment-service`, `theater-service`). Answers may be
      cached briefly; successive calls may spread over instances. It raises
      `DependencyUnavailable` (dependency = the service name) when no instance is known, or the
      registry cannot be reached and nothing usable is cached.
    - `register()` announces this instance (as `booking-service`) as UP; `renew()` renews its
      lease (re-registering when the registry forgot it); `deregister()` removes it. All three
      are idempotent and raise `DependencyUnavailable` when the registry cannot be reached.
      A directory of fixed addresses does nothing for them.
    - `start()` registers and keeps the lease renewed in the background until `close()`;
      `close()` stops the renewal, de-registers, and releases the directory's resources. Both are
      idempotent; `close()` never raises (shutdown must not fail because the registry is down).
    """

    async def resolve(self, service: str) -> str: ...

    async def register(self) -> None: ...

    async def renew(self) -> None: ...

    async def deregister(self) -> None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...
