"""Each HTTP request's dishka container, entered only when the request asks it for something.

dishka's Litestar integration (`setup_dishka`) enters the REQUEST scope of the application
container for every HTTP request and closes it at the end. A request answered without any
request-scoped dependency (a held-seat rejection, whose collaborators are resolved once at
start-up; a 401; a health probe) pays for that all the same: about a twentieth of a rejection's
instructions. Here the request gets a stand-in that enters the scope on its first `get` and is
closed when the request ends, exception included, as `setup_dishka`'s `async with` does.
`@inject` handlers and hooks find it where dishka's integration puts the container,
`request.state.dishka_container`. HTTP only: the service has no WebSocket routes.
"""

from __future__ import annotations

from typing import Any, TypeVar

from dishka import DEFAULT_COMPONENT, AsyncContainer, Scope
from dishka.entities.component import Component
from litestar import Request
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Send
from litestar.types import Scope as AsgiScope

T = TypeVar("T")


class RequestScope:
    """What `request.state.dishka_container` holds: the REQUEST scope, entered on first use."""

    __slots__ = ("_app_container", "_container", "_scope")

    def __init__(self, app_container: AsyncContainer, scope: AsgiScope) -> None:
        self._app_container = app_container
        self._scope = scope
        self._container: AsyncContainer | None = None

    @property
    def entered(self) -> bool:
        return self._container is not None

    async def get(
        self, dependency_type: type[T], component: Component | None = DEFAULT_COMPONENT
    ) -> T:
        container = self._container
        if container is None:
            context: dict[Any, Any] = {Request: Request(self._scope)}
            container = self._container = self._app_container(context, scope=Scope.REQUEST)
        return await container.get(dependency_type, component)

    async def close(self, exception: BaseException | None = None) -> None:
        container, self._container = self._container, None
        if container is not None:
            await container.close(exception)


def request_scope(app: ASGIApp, container: AsyncContainer) -> ASGIApp:
    """Wrap `app` (Litestar's ASGI handler) so each HTTP request has its `RequestScope`."""

    async def middleware(scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        lazy = RequestScope(container, scope)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["dishka_container"] = lazy
        try:
            await app(scope, receive, send)
        except BaseException as exc:
            await lazy.close(exc)
            raise
        await lazy.close()

    return middleware
