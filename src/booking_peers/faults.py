"""Switchable faults and a request log for the peer services, as an ASGI wrapper.

Control endpoints (never faulted, never logged):
- `POST /__control/faults` adds a rule, `DELETE /__control/faults` clears them, `GET` lists them;
- `GET /__control/requests` lists the requests received, `DELETE` forgets them;
- `GET /__control/health` answers 200 once the server is up.

A rule: `{"kind": "delay"|"status"|"drop", "path": "<substring>", "method": "POST",
"seconds": 0.5, "status": 503, "body": {...}, "phase": "before"|"after", "times": 1}`.
`delay` sleeps (long sleeps are timeouts for the caller); `status` answers without doing the work;
`drop` closes the connection mid-answer. Phase `after` does the work first and then misbehaves,
so the caller cannot know the outcome. `times` bounds how many requests the rule hits (absent:
until cleared).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]

CONTROL_PREFIX = "/__control"
_KINDS = frozenset({"delay", "status", "drop"})
_PHASES = frozenset({"before", "after"})
_LOG_LIMIT = 2000


@dataclass(slots=True)
class FaultRule:
    kind: str
    path: str = ""
    method: str | None = None
    seconds: float = 0.0
    status: int = 503
    body: Any = None
    phase: str = "before"
    times: int | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path in path


class FaultInjector:
    """Wrap an ASGI app with switchable faults and a log of what it was asked."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.rules: list[FaultRule] = []
        self.requests: deque[dict[str, Any]] = deque(maxlen=_LOG_LIMIT)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(CONTROL_PREFIX + "/faults") or path.startswith(
            CONTROL_PREFIX + "/requests"
        ):
            await self._control(scope, receive, send)
            return
        if path == CONTROL_PREFIX + "/health":
            await _send_json(send, 200, {"status": "UP"})
            return
        if path.startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return

        body = await _read_body(receive)
        self._record(scope, body)
        replay = _replaying(body, receive)
        rule = self._take_rule(scope["method"], path)
        if rule is None:
            await self.app(scope, replay, send)
            return
        if rule.phase == "after":
            await self._misbehave_after(rule, scope, replay, send)
            return
        if rule.kind == "delay":
            await asyncio.sleep(rule.seconds)
            await self.app(scope, replay, send)
        elif rule.kind == "status":
            await _send_json(send, rule.status, rule.body)
        else:
            await _drop(send)

    async def _misbehave_after(
        self, rule: FaultRule, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Do the work, then answer late, wrongly or not at all."""
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        if rule.kind == "drop":
            await _drop(send)
            return
        if rule.kind == "status":
            await _send_json(send, rule.status, rule.body)
            return
        await asyncio.sleep(rule.seconds)
        for message in held:
            await send(message)

    def _take_rule(self, method: str, path: str) -> FaultRule | None:
        for rule in self.rules:
            if rule.matches(method, path):
                if rule.times is not None:
                    rule.times -= 1
                return rule
        return None

    def _record(self, scope: Scope, body: bytes) -> None:
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = body.decode("utf-8", "replace")
        self.requests.append(
            {
                "method": scope["method"],
                "path": scope["path"],
                "query": scope.get("query_string", b"").decode("latin-1"),
                "headers": {
                    key.decode("latin-1").lower(): value.decode("latin-1")
                    for key, value in scope.get("headers", [])
                },
                "body": parsed,
                "at": time.time(),
            }
        )

    async def _control(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        is_faults = scope["path"].startswith(CONTROL_PREFIX + "/faults")
        if method == "DELETE":
            if is_faults:
                self.rules.clear()
            else:
                self.requests.clear()
            await _send_json(send, 200, {"cleared": True})
        elif method == "GET":
            listing = [asdict(r) for r in self.rules] if is_faults else list(self.requests)
            await _send_json(send, 200, listing)
        elif method == "POST" and is_faults:
            try:
                rule = _parse_rule(json.loads(await _read_body(receive) or b"{}"))
            except (ValueError, TypeError) as exc:
                await _send_json(send, 400, {"error": str(exc)})
                return
            self.rules.append(rule)
            await _send_json(send, 201, asdict(rule))
        else:
            await _send_json(send, 405, {"error": "method not allowed"})


def _parse_rule(data: Any) -> FaultRule:
    if not isinstance(data, dict):
        raise TypeError("a fault rule is a JSON object")
    rule = FaultRule(
        kind=str(data.get("kind", "")),
        path=str(data.get("path", "")),
        method=data.get("method"),
        seconds=float(data.get("seconds", 0.0)),
        status=int(data.get("status", 503)),
        body=data.get("body"),
        phase=str(data.get("phase", "before")),
        times=None if data.get("times") is None else int(data["times"]),
    )
    if rule.kind not in _KINDS:
        raise ValueError(f"kind must be one of {sorted(_KINDS)}")
    if rule.phase not in _PHASES:
        raise ValueError(f"phase must be one of {sorted(_PHASES)}")
    return rule


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the already-read body to the app, then waits for the client."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_json(send: Send, status: int, body: Any) -> None:
    content = b"" if body is None else json.dumps(body).encode()
    headers = [(b"content-length", str(len(content)).encode())]
    if body is not None:
        headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


async def _drop(send: Send) -> None:
    """Start an answer and abandon it: the server closes the connection mid-response."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"64"), (b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"partial":', "more_body": True})
