"""RedisSeatLock specifics on the real server: key format, stored values and TTLs, settings."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.crc import key_slot

from booking.adapters.redis.seat_lock import RedisSeatLock, command, create_redis_client
from booking.ports.seat_lock import HoldOutcome, hold_owner
from tests.support.redis import RedisServer

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
