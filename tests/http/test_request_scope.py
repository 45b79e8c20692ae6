"""dishka's request scope, entered only by a request that asks it for something."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from dishka import FromDishka, Provider, Scope, make_async_container, provide
from dishka.integrations.litestar import LitestarProvider, inject
from litestar import Litestar, Request, get

from booking.domain.identity import Principal
from booking.entrypoints.request_scope import RequestScope, request_scope

from .conftest import Api, auth, problem


class Lifecycle:
    """A request-scoped dependency that records what its finaliser was told."""

    made: list[Lifecycle] = []  # noqa: RUF012 - the test's record

    def __init__(self, path: str) -> None:
        self.path = path
        self.ended_with: BaseException | None | str = "open"
        Lifecycle.made.append(self)


class Scoped(Provider):
    @provide(scope=Scope.REQUEST)
    async def lifecycle(self, request: Request) -> AsyncIterator[Lifecycle]:  # type: ignore[type-arg]
        made = Lifecycle(request.url.path)
        exception = yield made
        made.ended_with = exception


@get("/plain", sync_to_thread=False)
def plain() -> str:
    return "plain"


@get("/twice")
@inject
async def twice(first: FromDishka[Lifecycle], request: Request[Any, Any, Any]) -> str:
    second = await request.state.dishka_container.get(Lifecycle)
    assert second is first
    return first.path


@get("/fails")
@inject
async def fails(made: FromDishka[Lifecycle]) -> str:
    raise RuntimeError("the handler failed")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    Lifecycle.made.clear()
    container = make_async_container(Scoped(), LitestarProvider())
    app = Litestar(route_handlers=[plain, twice, fails], debug=False)
    app.state.dishka_container = container
    app.asgi_handler = request_scope(app.asgi_handler, container)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http
    await container.close()


async def test_a_request_that_asks_for_nothing_enters_no_scope(client: httpx.AsyncClient) -> None:
    response = await client.get("/plain")
    assert response.status_code == 200
    assert Lifecycle.made == []


async def test_the_scope_is_entered_once_sees_the_request_and_is_closed(
    client: httpx.AsyncClient,
) -> None:
    first = await client.get("/twice")
    second = await client.get("/twice")
    assert (first.text, second.text) == ("/twice", "/twice")
    assert len(Lifecycle.made) == 2  # one per request, shared within it
    assert [made.ended_with for made in Lifecycle.made] == [None, None]


async def test_a_failing_request_closes_its_scope_with_the_exception(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/fails")
    assert response.status_code == 500
    (made,) = Lifecycle.made
    # Litestar answers the exception itself: the scope closes after the answer, cleanly.
    assert made.ended_with is None


async def test_an_exception_past_the_app_reaches_the_finaliser() -> None:
    container = make_async_container(Scoped(), LitestarProvider())
    Lifecycle.made.clear()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await scope["state"]["dishka_container"].get(Lifecycle)
        raise LookupError("past every handler")

    wrapped = request_scope(app, container)
    scope = {"type": "http", "path": "/raw", "headers": [], "query_string": b""}
    with pytest.raises(LookupError):
        await wrapped(scope, None, None)  # type: ignore[arg-type]
    (made,) = Lifecycle.made
    assert isinstance(made.ended_with, LookupError)
    assert isinstance(scope["state"]["dishka_container"], RequestScope)  # type: ignore[index]
    assert not scope["state"]["dishka_container"].entered  # type: ignore[index]
    await container.close()


async def test_creates_rejections_and_reads_never_enter_the_request_scope(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The create and read routes' callers and collaborators are resolved without the request
    scope; a route that injects the caller still gets the one the hook authenticated."""
    asked: list[Any] = []
    original = RequestScope.get

    async def spy(self: RequestScope, dependency_type: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(dependency_type)
        return await original(self, dependency_type, *args, **kwargs)

    monkeypatch.setattr(RequestScope, "get", spy)
    created = await api.booked([1])
    problem(await api.create([1], user_id=8), 409, "SEAT_LOCK_CONFLICT")
    problem(await api.client.post("/api/v1/bookings", json={}), 401, "UNAUTHENTICATED")
    read = await api.client.get(f"/api/v1/bookings/{created['bookingId']}", headers=auth())
    assert read.json()["bookingId"] == created["bookingId"]
    problem(await api.client.get("/api/v1/bookings/1", headers=auth(8)), 404, "BOOKING_NOT_FOUND")
    assert asked == []
    page = await api.client.get("/api/v1/bookings", headers=auth())
    assert [b["bookingId"] for b in page.json()["items"]] == [created["bookingId"]]
    assert Principal in asked
