"""RedisSeatLock specifics on the real server: key format, stored values and TTLs, settings."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from booking.adapters.redis.seat_lock import (
    RedisSeatLock,
    ScriptBatches,
    command,
    create_redis_client,
)
from booking.ports.seat_lock import HoldOutcome, hold_owner
from tests.support.redis import RedisServer, free_port

pytestmark = pytest.mark.redis


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    redis = create_redis_client(redis_url, socket_timeout=2.0, connect_timeout=2.0)
    yield redis
    await redis.aclose()


@pytest.fixture
def prefix(redis_key_prefix: str) -> str:
    return f"{redis_key_prefix}:{uuid.uuid4().hex[:8]}"


def test_key_format_carries_the_show_hash_tag(client: Redis) -> None:
    """Hold keys read `{prefix}:hold:{show:<id>}:seat:<id>`, so one show maps to one slot."""
    lock = RedisSeatLock(client, key_prefix="booking")
    assert lock.key(12, 101) == "booking:hold:{show:12}:seat:101"
    slots = {key_slot(lock.key(12, seat).encode()) for seat in range(1, 200)}
    assert slots == {key_slot(b"show:12")}


@pytest.mark.parametrize("bad", ["", "a{b", "a}b", "{x}"])
def test_prefix_with_braces_is_refused(client: Redis, bad: str) -> None:
    """A prefix that could carry its own hash tag (or is empty) is refused at construction."""
    with pytest.raises(ValueError, match="key_prefix"):
        RedisSeatLock(client, key_prefix=bad)


async def test_hold_is_a_string_key_with_owner_and_millisecond_ttl(
    client: Redis, prefix: str
) -> None:
    """acquire stores the owner token under each key with a PX TTL no longer than asked."""
    lock = RedisSeatLock(client, key_prefix=prefix)
    owner = hold_owner(42)
    assert (await lock.acquire(12, [101, 102], owner, timedelta(seconds=30))).acquired
    for seat in (101, 102):
        key = lock.key(12, seat)
        assert await client.get(key) == owner.encode()
        assert 0 < await client.pttl(key) <= 30_000


async def test_extend_rearms_the_ttl_of_own_keys_only(client: Redis, prefix: str) -> None:
    """extend sets the new TTL on the owner's key and leaves another owner's key's TTL as is."""
    lock = RedisSeatLock(client, key_prefix=prefix)
    await lock.acquire(12, [1], "booking:1", timedelta(seconds=10))
    await lock.acquire(12, [2], "booking:2", timedelta(seconds=10))
    assert not await lock.extend(12, [1, 2], "booking:1", timedelta(seconds=60))
    assert 10_000 < await client.pttl(lock.key(12, 1)) <= 60_000
    assert await client.pttl(lock.key(12, 2)) <= 10_000


async def test_duplicate_seat_ids_count_once(client: Redis, prefix: str) -> None:
    """A seat named twice is one hold: release counts it once."""
    lock = RedisSeatLock(client, key_prefix=prefix)
    assert (await lock.acquire(12, [5, 5], "booking:1", timedelta(seconds=10))).acquired
    assert await lock.release(12, [5, 5], "booking:1") == 1


async def test_non_positive_ttl_is_refused(client: Redis, prefix: str) -> None:
    """A TTL under one millisecond is a programming error, refused before Redis is called."""
    lock = RedisSeatLock(client, key_prefix=prefix)
    with pytest.raises(ValueError, match="TTL"):
        await lock.acquire(12, [1], "booking:1", timedelta(0))
    with pytest.raises(ValueError, match="TTL"):
        await lock.extend(12, [1], "booking:1", timedelta(microseconds=500))


async def test_scripts_survive_a_script_cache_flush(private_redis: RedisServer) -> None:
    """After SCRIPT FLUSH (a restarted or failed-over server) the scripts are loaded again."""
    client = create_redis_client(private_redis.url, socket_timeout=2.0, connect_timeout=2.0)
    try:
        lock = RedisSeatLock(client)
        await lock.acquire(12, [1], "booking:1", timedelta(seconds=10))
        await client.script_flush()
        assert (await lock.acquire(12, [1], "booking:1", timedelta(seconds=10))).acquired
        assert await lock.release(12, [1], "booking:1") == 1
        assert not lock.degraded
    finally:
        await client.aclose()


async def test_a_pooled_connection_the_server_dropped_is_replaced(
    client: Redis, redis_url: str, prefix: str
) -> None:
    """A pooled connection Redis closed meanwhile (a restart, an idle timeout, CLIENT KILL)
    costs the call nothing: it is made once more on a fresh connection."""
    lock = RedisSeatLock(client, key_prefix=prefix)
    await lock.acquire(12, [1], "booking:1", timedelta(seconds=10))
    pooled = int(await client.client_id())  # the one connection in the pool
    killer = create_redis_client(redis_url)
    try:
        assert await killer.client_kill_filter(_id=pooled) == 1
    finally:
        await killer.aclose()
    assert (await lock.acquire(12, [2], "booking:1", timedelta(seconds=10))).acquired
    assert await lock.release(12, [1, 2], "booking:1") == 2
    assert not lock.degraded
    assert int(await client.client_id()) != pooled


async def test_a_connection_that_fails_mid_call_is_replaced_once(
    client: Redis, prefix: str
) -> None:
    """A pooled connection that passes the pool's check but fails when the command is written
    (its socket shut for writing, as a connection reset would) is dropped, and the call is
    made once more on a fresh connection."""
    lock = RedisSeatLock(client, key_prefix=prefix)
    await lock.acquire(12, [1], "booking:1", timedelta(seconds=10))
    (pooled,) = client.connection_pool._available_connections  # noqa: SLF001 - to break it
    pooled._writer.get_extra_info("socket").shutdown(socket.SHUT_WR)  # noqa: SLF001
    assert (await lock.acquire(12, [2], "booking:1", timedelta(seconds=10))).acquired
    assert await lock.holders(12, [1, 2]) == {1: "booking:1", 2: "booking:1"}
    assert not lock.degraded


@given(
    st.sampled_from(["EVALSHA", "MGET", "SET"]),
    st.lists(st.one_of(st.text(), st.integers(min_value=-(2**63), max_value=2**63 - 1))),
)
def test_commands_are_packed_as_redis_py_packs_them(name: str, args: list[str | int]) -> None:
    """The hold scripts' EVALSHA is written by `command`: the bytes redis-py would send."""
    assert command(name, *args) == b"".join(Connection().pack_command(name, *args))


async def test_a_rejection_names_the_taken_seats_in_the_order_asked(
    client: Redis, prefix: str
) -> None:
    """Conflicts come back by position, whatever the order of the request and of the keys."""
    lock = RedisSeatLock(client, key_prefix=prefix)
    assert (await lock.acquire(4, [9, 2, 7], "a", timedelta(seconds=30))).acquired
    outcome = await lock.acquire(4, [1, 7, 3, 9, 5], "b", timedelta(seconds=30))
    assert outcome == HoldOutcome(acquired=False, conflicts=(7, 9))
    assert await client.exists(lock.key(4, 1), lock.key(4, 3), lock.key(4, 5)) == 0
    assert (await lock.acquire(4, [1, 3, 5], "b", timedelta(seconds=30))).acquired


# --- scripts sent in batches ---------------------------------------------------------------


@pytest.fixture
async def batches(redis_url: str) -> AsyncIterator[ScriptBatches]:
    """Batches on a pool of one connection: a second connection would be refused."""
    client = create_redis_client(redis_url, max_connections=1)
    yield ScriptBatches(client.connection_pool, 2.0)
    await client.aclose()


async def test_the_commands_of_one_turn_leave_together_on_one_connection(
    batches: ScriptBatches,
) -> None:
    """Fifty commands asked for in one turn: one batch, the replies in order."""
    replies = await asyncio.gather(*[batches.run(command("ECHO", f"n{i}")) for i in range(50)])
    assert replies == [f"n{i}".encode() for i in range(50)]


async def test_an_error_reply_fails_only_its_own_command(batches: ScriptBatches) -> None:
    first = batches.run(command("ECHO", "a"))
    unknown = batches.run(command("EVALSHA", "0" * 40, 0))
    last = batches.run(command("ECHO", "b"))
    assert await first == b"a"
    with pytest.raises(NoScriptError):
        await unknown
    assert await last == b"b"
    assert await batches.run(command("ECHO", "after")) == b"after"  # still in step


async def test_a_caller_that_gave_up_leaves_the_connection_in_step(batches: ScriptBatches) -> None:
    gone = batches.run(command("ECHO", "gone"))
    kept = batches.run(command("ECHO", "kept"))
    gone.cancel()
    assert await kept == b"kept"
    assert await batches.run(command("ECHO", "next")) == b"next"


async def _each_of_a_batch_fails(url: str, within: float, error: type[Exception]) -> None:
    client = create_redis_client(url, connect_timeout=2.0)
    batches = ScriptBatches(client.connection_pool, within)
    try:
        for future in [batches.run(command("ECHO", "x")) for _ in range(3)]:
            with pytest.raises(error):
                await future
    finally:
        await client.aclose()


async def test_a_batch_with_no_redis_fails_each_command_with_a_connection_error() -> None:
    await _each_of_a_batch_fails(f"redis://127.0.0.1:{free_port()}", 2.0, RedisConnectionError)


async def test_a_silent_redis_fails_the_batch_in_time() -> None:
    """A server that takes the connection and never answers: every command of the batch
    fails with a timeout after the batch's own, not the callers'."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers, until the client hangs up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    started = time.monotonic()
    try:
        port = server.sockets[0].getsockname()[1]
        await _each_of_a_batch_fails(f"redis://127.0.0.1:{port}", 0.2, RedisTimeoutError)
    finally:
        server.close()
    assert time.monotonic() - started < 1.5


async def test_concurrent_holds_share_a_connection(redis_url: str, prefix: str) -> None:
    """Twenty concurrent holds on a client of two connections: the first goes alone, the
    rest, asked for while it is on its way, leave in one batch (one at a time each would need
    twenty connections and be refused)."""
    client = create_redis_client(redis_url, max_connections=2)
    lock = RedisSeatLock(client, key_prefix=prefix)
    try:
        outcomes = await asyncio.gather(
            *[lock.acquire(6, [seat], f"owner-{seat}", timedelta(seconds=30)) for seat in range(20)]
        )
        taken = await lock.acquire(6, [3, 30], "someone-else", timedelta(seconds=30))
    finally:
        await client.aclose()
    assert all(outcome.acquired for outcome in outcomes)
    assert taken == HoldOutcome(acquired=False, conflicts=(3,))


async def test_batched_holds_load_a_script_redis_forgot(client: Redis, prefix: str) -> None:
    """After SCRIPT FLUSH the batched holds get NOSCRIPT and go again alone, loading it."""
    lock = RedisSeatLock(client, key_prefix=prefix)
    assert (await lock.acquire(7, [1], "first", timedelta(seconds=30))).acquired
    await client.script_flush()
    outcomes = await asyncio.gather(
        *[lock.acquire(7, [seat], f"owner-{seat}", timedelta(seconds=30)) for seat in range(2, 12)]
    )
    assert all(outcome.acquired for outcome in outcomes)
    assert await client.get(lock.key(7, 11)) == b"owner-11"
