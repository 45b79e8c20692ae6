"""Redis seat holds; key `{prefix}:hold:{show:<show_id>}:seat:<seat_id>`, value = owner token."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from booking.adapters.redis.breaker import BreakerState, CircuitBreaker
from booking.ports.errors import SeatLockUnavailable
from booking.ports.seat_lock import HoldOutcome

log = logging.getLogger(__name__)

T = TypeVar("T")

# Every key of one show carries the hash tag `{show:<id>}`, so a booking's keys live in one
# Redis Cluster slot and the multi-key scripts below run there unchanged.
#
# KEYS = the seat keys; ARGV[1] = owner token; ARGV[2] = TTL in milliseconds.
# Answers 0 when every key was set; otherwise nothing is set and the answer is one character
# per key, "1" where another owner holds it: one reply to parse, where an array of positions
# would be one reply per taken seat.
_ACQUIRE = """
local flags = {}
local taken = false
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder and holder ~= ARGV[1] then
    flags[i] = '1'
    taken = true
  else
    flags[i] = '0'
  end
end
if taken then
  return table.concat(flags)
end
for _, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
end
return 0
"""

# Deletes only the keys whose value is the owner; answers how many.
_RELEASE = """
local removed = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
    removed = removed + 1
  end
end
return removed
"""

# Re-arms the TTL of the keys the owner still holds; answers 1 when it held every one.
_EXTEND = """
local all = 1
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  else
    all = 0
  end
end
return all
"""


def create_redis_client(
    url: str,
    *,
    socket_timeout: float | None = None,
    connect_timeout: float = 0.25,
    max_connections: int = 200,
) -> Redis:
    """A client for seat holds: a short connect timeout and one immediate retry.

    The one retry covers a pooled connection that died while Redis restarted; every script is
    safe to run twice (same owner, same outcome). Longer waits are the breaker's business. No
    socket timeout by default: `RedisSeatLock` bounds each whole call (`call_timeout`), and
    redis-py's per-command socket timeout costs a task and a timer on every command, a fifth
    of a hold's client CPU."""
    return Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        retry=Retry(NoBackoff(), 1, (RedisConnectionError, RedisTimeoutError)),
        max_connections=max_connections,
        decode_responses=False,
    )


class RedisSeatLock:
    """`SeatLock` on Redis (see the port's contract).

    Holds are plain string keys (see the module docstring for the format) set with `SET PX`; all
    writes run in Lua scripts so that acquire is all-or-nothing and release/extend compare the
    owner before acting. Each call is bounded by `call_timeout` seconds; every Redis error or
    timeout raises `SeatLockUnavailable`. After `failure_threshold` consecutive failures a
    circuit breaker fails calls fast for `reset_after` seconds, then lets one trial call probe
    Redis; `degraded` is True while the breaker is not closed. The client is not owned (the
    caller closes it).
    """

    def __init__(
        self,
        client: Redis,
        *,
        key_prefix: str = "booking",
        call_timeout: float = 0.5,
        failure_threshold: int = 3,
        reset_after: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not key_prefix or "{" in key_prefix or "}" in key_prefix:
            # A brace in the prefix would become the hash tag and scatter a show's keys.
            raise ValueError("key_prefix must be non-empty and contain no braces")
        if call_timeout <= 0:
            raise ValueError("call_timeout must be positive")
        self._client = client
        self._prefix = key_prefix
        self._timeout = call_timeout
        self._breaker = CircuitBreaker(
            failure_threshold=failure_threshold, reset_after=reset_after, monotonic=monotonic
        )
        self._batches = ScriptBatches(client.connection_pool, call_timeout)
        self._in_flight = 0  # scripts on their way to Redis, alone or batched
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._extend = client.register_script(_EXTEND)

    @property
    def degraded(self) -> bool:
        """True while Redis is considered down (calls fail fast or one probe is in flight)."""
        return self._breaker.state is not BreakerState.CLOSED

    @property
    def breaker_state(self) -> BreakerState:
        return self._breaker.state

    def key(self, show_id: int, seat_id: int) -> str:
        """The hold key of one show-seat."""
        return f"{self._prefix}:hold:{{show:{show_id}}}:seat:{seat_id}"

    async def acquire(
        self, show_id: int, seat_ids: Sequence[int], owner: str, ttl: timedelta
    ) -> HoldOutcome:
        seats = _distinct(seat_ids)
        ttl_ms = _ttl_ms(ttl)
        if not seats:
            return HoldOutcome(acquired=True)
        keys = [self.key(show_id, s) for s in seats]
        reply: int | bytes | str = await self._call(
            "acquire", lambda: self._script(self._acquire, keys, owner, ttl_ms), timed=False
        )
        if isinstance(reply, int):
            return HoldOutcome(acquired=True)  # 0: every seat was set
        flags = _text(reply)
        conflicts = tuple(seat for seat, flag in zip(seats, flags, strict=True) if flag == "1")
        return HoldOutcome(acquired=False, conflicts=conflicts)

    async def release(self, show_id: int, seat_ids: Sequence[int], owner: str) -> int:
        seats = _distinct(seat_ids)
        if not seats:
            return 0
        keys = [self.key(show_id, s) for s in seats]
        removed: int = await self._call(
            "release", lambda: self._script(self._release, keys, owner), timed=False
        )
        return int(removed)

    async def extend(
        self, show_id: int, seat_ids: Sequence[int], owner: str, ttl: timedelta
    ) -> bool:
        seats = _distinct(seat_ids)
        ttl_ms = _ttl_ms(ttl)
        if not seats:
            return True
        keys = [self.key(show_id, s) for s in seats]
        held_all: int = await self._call(
            "extend", lambda: self._script(self._extend, keys, owner, ttl_ms), timed=False
        )
        return bool(held_all)

    async def holders(self, show_id: int, seat_ids: Sequence[int]) -> dict[int, str]:
        seats = _distinct(seat_ids)
        if not seats:
            return {}
        keys = [self.key(show_id, s) for s in seats]
        values: list[Any] = await self._call("holders", lambda: self._client.mget(keys))
        return {
            seat: _text(value)
            for seat, value in zip(seats, values, strict=True)
            if value is not None
        }

    async def ping(self) -> None:
        await self._call("ping", self._client.ping)

    async def _script(self, script: AsyncScript, keys: list[str], *args: str | int) -> Any:
        """EVALSHA on a pooled connection: what `script(keys, args)` sends, without the client's
        per-command layers (its retry wrapper, argument deprecation checks and observability
        hooks), which cost a quarter of a hold's client CPU. As there: a script Redis does not
        know (restarted, SCRIPT FLUSH) is loaded and run again, and a connection that fails
        (Redis closed it meanwhile) is dropped and the call made once more on a fresh one;
        every script is safe to run twice.

        While another script is on its way, this one joins the batch of this event loop turn
        (`ScriptBatches`), whose deadline bounds the wait: a batch with no reply in time fails
        the call. Should the batch fail otherwise, or Redis not know the script, it is sent on
        a connection of its own as above, within what is left of `call_timeout` since the
        call began. Only that path needs a timer of its own."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        self._in_flight += 1
        try:
            if self._in_flight > 1:  # another script is on its way
                try:
                    return await self._batches.run(_evalsha_command(script.sha, keys, args))
                except (NoScriptError, RedisConnectionError):
                    pass
            async with asyncio.timeout_at(deadline):
                return await self._alone(script, keys, args)
        finally:
            self._in_flight -= 1

    async def _alone(
        self, script: AsyncScript, keys: list[str], args: tuple[str | int, ...]
    ) -> Any:
        pool = self._client.connection_pool
        for attempt in range(2):
            connection = await pool.get_connection()  # type: ignore[no-untyped-call]
            try:
                try:
                    return await _evalsha(connection, script.sha, keys, args)
                except NoScriptError:
                    script.sha = await self._client.script_load(script.script)
                    return await _evalsha(connection, script.sha, keys, args)
            except (RedisConnectionError, RedisTimeoutError):
                await connection.disconnect()
                if attempt:
                    raise
            finally:
                await pool.release(connection)
        raise AssertionError("unreachable")

    async def _call(
        self, operation: str, call: Callable[[], Awaitable[T]], *, timed: bool = True
    ) -> T:
        """`call` through the circuit breaker, bounded by `call_timeout` (`timed`), or by
        itself (`_script` does: a batched script is bounded by its batch's deadline)."""
        attempt = self._breaker.attempt()
        if attempt is None:
            raise SeatLockUnavailable(f"redis seat lock degraded: {operation} not attempted")
        try:
            if timed:
                async with asyncio.timeout(self._timeout):
                    result = await call()
            else:
                result = await call()
        except (RedisError, OSError, TimeoutError) as exc:
            attempt.failed()
            if self._breaker.state is BreakerState.OPEN:
                log.warning("redis seat lock degraded after %s failed: %r", operation, exc)
            raise SeatLockUnavailable(f"redis {operation} failed: {type(exc).__name__}") from exc
        except BaseException:
            attempt.abandoned()
            raise
        if attempt.trial:
            log.info("redis seat lock recovered")
        attempt.succeeded()
        return result


class ScriptBatches:
    """Scripts that leave together: those asked for within one turn of the event loop are
    written in one send, on one connection, at the end of that turn, and their replies read
    back in order (Redis answers a connection's commands in the order sent).

    Under an on-sale's load a worker has many holds on their way at once; sent one by one,
    each costs its own send, wake-up and receive in the service and in Redis. A batch shares
    them: 64 tasks holding in a loop spent 8 us of client CPU and 3 us of Redis's per script
    against 28 and 15 one by one. A lone script would only wait a turn for nothing, so
    `RedisSeatLock` batches a script only while another is in flight.

    An error reply (NOSCRIPT) fails only its own script. A batch whose connection fails, or
    that gets no reply within `timeout`, fails every script still waiting with
    ConnectionError or TimeoutError, and the connection is dropped; a caller that gave up
    meanwhile (its request cancelled) is skipped, its reply read and discarded, so the connection
    stays in step."""

    def __init__(self, pool: ConnectionPool, timeout: float) -> None:
        self._pool = pool
        self._timeout = timeout
        self._waiting: list[tuple[bytes, asyncio.Future[Any]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    def run(self, packed: bytes) -> asyncio.Future[Any]:
        """The reply to `packed` (one command in RESP), sent with this turn's batch."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._flush)
        self._waiting.append((packed, future))
        return future

    def _flush(self) -> None:
        batch, self._waiting = self._waiting, []
        task = asyncio.ensure_future(self._send(batch))
        self._sending.add(task)  # a reference until it is done
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[bytes, asyncio.Future[Any]]]) -> None:
        deadline = asyncio.get_running_loop().time() + self._timeout
        try:
            async with asyncio.timeout_at(deadline):
                connection = await self._pool.get_connection()  # type: ignore[no-untyped-call]
        except Exception as exc:  # handed to every caller of the batch
            _fail(batch, exc)
            return
        try:
            async with asyncio.timeout_at(deadline):
                await connection.send_packed_command(b"".join(packed for packed, _ in batch))
                for _, future in batch:
                    try:
                        reply = await connection.read_response()
                    except ResponseError as exc:
                        if not future.done():
                            future.set_exception(exc)
                    else:
                        if not future.done():
                            future.set_result(reply)
        except BaseException as exc:
            _fail(batch, exc)  # before the disconnect: the callers wait on nothing more
            await connection.disconnect()
            if not isinstance(exc, Exception):
                raise
        finally:
            await self._pool.release(connection)


def _fail(batch: list[tuple[bytes, asyncio.Future[Any]]], exc: BaseException) -> None:
    timed_out = isinstance(exc, TimeoutError | RedisTimeoutError)
    for _, future in batch:
        if not future.done():
            future.set_exception(
                RedisTimeoutError("no reply to the batch in time")
                if timed_out
                else RedisConnectionError(f"the batch failed: {exc!r}")
            )


async def _evalsha(
    connection: AbstractConnection, sha: str, keys: list[str], args: tuple[str | int, ...]
) -> Any:
    await connection.send_packed_command(_evalsha_command(sha, keys, args))
    return await connection.read_response()


def _evalsha_command(sha: str, keys: list[str], args: tuple[str | int, ...]) -> bytes:
    return command("EVALSHA", sha, len(keys), *keys, *args)


def command(*args: str | int) -> bytes:
    """One command in RESP, as redis-py's `pack_command` writes it for these argument types.

    Its encoder is generic (bytes, memoryviews, floats, the client's encoding options, a
    split for large values): about 13 us for an EVALSHA of two seats, here about 4."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else b"%d" % arg
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _distinct(seat_ids: Sequence[int]) -> list[int]:
    return list(dict.fromkeys(seat_ids))


def _ttl_ms(ttl: timedelta) -> int:
    ms = int(ttl / timedelta(milliseconds=1))
    if ms <= 0:
        raise ValueError("a hold TTL must be at least one millisecond")
    return ms


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
