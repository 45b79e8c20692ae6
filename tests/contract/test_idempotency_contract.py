"""The IdempotencyStore contract, run on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from booking.ports.idempotency import InFlight, KeyReused, Replay, Started, StoredResponse
from tests.support.postgres import T0, Storage

IN_FLIGHT_FOR = timedelta(seconds=30)
KEEP_FOR = timedelta(hours=24)
ANSWER = StoredResponse(status_code=201, body=b'{"bookingId":42}', resource_id=42)


async def test_a_new_key_starts_and_a_repeat_waits(storage: Storage) -> None:
    """The first request owns a new key; a repeat while it runs is in flight."""
    store = storage.idempotency
    assert await store.begin("user:1", "k1", "fp-a", T0, IN_FLIGHT_FOR) == Started()
    later = T0 + timedelta(seconds=1)
    assert await store.begin("user:1", "k1", "fp-a", later, IN_FLIGHT_FOR) == InFlight()


async def test_the_same_key_with_another_body_is_refused(storage: Storage) -> None:
    """Another fingerprint under a known key is KeyReused, in flight or answered."""
    store = storage.idempotency
    await store.begin("user:1", "k1", "fp-a", T0, IN_FLIGHT_FOR)
    assert await store.begin("user:1", "k1", "fp-b", T0, IN_FLIGHT_FOR) == KeyReused()
    await store.complete("user:1", "k1", ANSWER, T0, KEEP_FOR)
    assert await store.begin("user:1", "k1", "fp-b", T0, IN_FLIGHT_FOR) == KeyReused()


async def test_a_completed_key_replays_its_answer(storage: Storage) -> None:
    """After complete, a repeat with the same body replays the stored answer exactly."""
    store = storage.idempotency
    binary = StoredResponse(status_code=409, body=bytes(range(256)), resource_id=None)
    await store.begin("user:1", "k1", "fp-a", T0, IN_FLIGHT_FOR)
    await store.begin("user:1", "k2", "fp-b", T0, IN_FLIGHT_FOR)
    await store.complete("user:1", "k1", ANSWER, T0, KEEP_FOR)
    await store.complete("user:1", "k2", binary, T0, KEEP_FOR)
    later = T0 + KEEP_FOR - timedelta(seconds=1)
    assert await store.begin("user:1", "k1", "fp-a", later, IN_FLIGHT_FOR) == Replay(ANSWER)
    assert await store.begin("user:1", "k2", "fp-b", later, IN_FLIGHT_FOR) == Replay(binary)


async def test_an_abandoned_claim_can_be_taken_again(storage: Storage) -> None:
    """A claim older than in_flight_for is abandoned: the next request starts afresh."""
    store = storage.idempotency
    await store.begin("user:1", "k1", "fp-a", T0, IN_FLIGHT_FOR)
    almost = T0 + IN_FLIGHT_FOR - timedelta(seconds=1)
    assert await store.begin("user:1", "k1", "fp-a", almost, IN_FLIGHT_FOR) == InFlight()
    taken = T0 + IN_FLIGHT_FOR
    assert await store.begin("user:1", "k1", "fp-b", taken, IN_FLIGHT_FOR) == Started()
    # The new owner's claim counts from when it was taken.
    assert await store.begin("user:1", "k1", "fp-b", taken, IN_FLIGHT_FOR) == InFlight()


async def test_an_answer_expires_after_keep_for(storage: Storage) -> None:
    """A stored answer is kept for keep_for; after that the key starts afresh."""
    store = storage.idempotency
    await store.begin("user:1", "k1", "fp-a", T0, IN_FLIGHT_FOR)
    await store.complete("user:1", "k1", ANSWER, T0, KEEP_FOR)
    expired = T0 + KEEP_FOR
    assert await store.begin("user:1", "k1", "fp-b", expired, IN_FLIGHT_FOR) == Started()
    assert await store.begin("user:1", "k1", "fp-b", expired, IN_FLIGHT_FOR) == InFlight()


async def test_forget_drops_the_key(storage: Storage) -> None:
    """A forgotten key starts afresh; forgetting an unknown key is quiet."""
    store = storage.idempotency
    await store.begin("user:1", "k1", "fp-a", T0, IN_FLIGHT_FOR)
    await store.forget("user:1", "k1")
    await store.forget("user:1", "never-seen")
    assert await store.begin("user:1", "k1", "fp-b", T0, IN_FLIGHT_FOR) == Started()


async def test_keys_are_scoped_by_caller(storage: Storage) -> None:
    """Two callers may use the same key without seeing each other's requests."""
    store = storage.idempotency
    await store.begin("user:1", "k1", "fp-a", T0, IN_FLIGHT_FOR)
    await store.complete("user:1", "k1", ANSWER, T0, KEEP_FOR)
    assert await store.begin("user:2", "k1", "fp-z", T0, IN_FLIGHT_FOR) == Started()
    await store.forget("user:2", "k1")
    assert await store.begin("user:1", "k1", "fp-a", T0, IN_FLIGHT_FOR) == Replay(ANSWER)


async def test_long_keys_and_scopes_are_kept_apart(storage: Storage) -> None:
    """Keys of 255 characters work and differ by their last character."""
    store = storage.idempotency
    key_a, key_b = "k" * 254 + "a", "k" * 254 + "b"
    assert await store.begin("user:1", key_a, "fp", T0, IN_FLIGHT_FOR) == Started()
    assert await store.begin("user:1", key_b, "fp", T0, IN_FLIGHT_FOR) == Started()


async def test_simultaneous_first_requests_start_once(storage: Storage) -> None:
    """Of many simultaneous first requests with one key, exactly one starts."""
    store = storage.idempotency
    outcomes = await asyncio.gather(
        *(store.begin("user:1", "race", "fp-a", T0, IN_FLIGHT_FOR) for _ in range(8))
    )
    assert outcomes.count(Started()) == 1
    assert outcomes.count(InFlight()) == 7
