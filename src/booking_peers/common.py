"""What the peer services share: the platform's identity check and Spring-like error bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response

SERVICE_ROLE = "SERVICE_ACCOUNT"


def json_response(status: int, body: Any = None) -> Response[Any]:
    if body is None:
        return Response(content=b"", status_code=status)
    return Response(content=body, status_code=status, media_type="application/json")


def spring_error(status: int, error: str, path: str) -> Response[Any]:
    """The body Spring Boot answers for an unhandled error."""
    return json_response(
        status,
        {
            "timestamp": datetime.now(UTC).isoformat(),
            "status": status,
            "error": error,
            "path": path,
        },
    )


def roles_of(request: Request[Any, Any, Any]) -> set[str]:
    """Roles of the X-User-Roles header, with or without the `ROLE_` prefix."""
    raw = request.headers.get("x-user-roles", "")
    roles = set()
    for item in raw.split(","):
        role = item.strip().upper()
        if role:
            roles.add(role[5:] if role.startswith("ROLE_") else role)
    return roles


def identity_problem(request: Request[Any, Any, Any]) -> str | None:
    """Why the caller may not use an internal endpoint: None when it may.

    Answers "forbidden" when headers are missing or lack the service role, "not-numeric" when
    X-User-Id is not a number (the Java services parse it as a Long).
    """
    user_id = request.headers.get("x-user-id")
    if not user_id or not request.headers.get("x-user-roles"):
        return "forbidden"
    if SERVICE_ROLE not in roles_of(request):
        return "forbidden"
    try:
        int(user_id)
    except ValueError:
        return "not-numeric"
    return None


async def json_body(request: Request[Any, Any, Any]) -> Any:
    """The request's JSON body, or None when it is missing or not JSON."""
    raw = await request.body()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def as_long(value: Any) -> int | None:
    """A JSON integer as Java reads a Long (booleans and fractions are not)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def as_long_list(value: Any) -> list[int] | None:
    if not isinstance(value, list):
        return None
    items = [as_long(item) for item in value]
    if any(item is None for item in items):
        return None
    return [item for item in items if item is not None]
