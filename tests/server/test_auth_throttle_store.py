"""Failure counts in process and in Redis, on a clock the test drives: the same steps in both,
shared between replicas through Redis, and counted in process while Redis is down."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from routing.redis_health import redis_client
from server.auth_throttle_policy import ThrottlePolicy
from server.auth_throttle_store import (
    FailureStore,
    InProcessFailureStore,
    NoFailureStore,
    RedisFailureStore,
    make_failure_store,
)
from tests.emulators.harness import free_port
from tests.server.throttle_fakes import Clock

POLICY = ThrottlePolicy(limit=3, window=60.0, lockout=300.0)


@pytest.fixture(params=["memory", "redis"])
async def store_and_clock(
    request: pytest.FixtureRequest, unique_prefix: str
) -> AsyncIterator[tuple[FailureStore, Clock]]:
    clock = Clock()
    if request.param == "memory":
        yield InProcessFailureStore(POLICY, clock=clock), clock
        return
    store = RedisFailureStore(
        Redis.from_url(request.getfixturevalue("redis_url")), POLICY, prefix=unique_prefix, clock=clock
    )
    yield store, clock
    await store.aclose()


async def test_failures_lock_the_address_until_the_lockout_ends(
    store_and_clock: tuple[FailureStore, Clock],
) -> None:
    store, clock = store_and_clock
    assert [(await store.failed("10.0.0.1")).count for _ in range(2)] == [1, 2]
    assert await store.locked("10.0.0.1") is None
    locking = await store.failed("10.0.0.1")
    assert locking.count == 3 and locking.retry_after == pytest.approx(300.0)
    clock.now += 100
    assert await store.locked("10.0.0.1") == pytest.approx(200.0)
    again = await store.failed("10.0.0.1")
    assert again.count == 0 and again.retry_after == pytest.approx(200.0)
    assert await store.locked("10.0.0.2") is None  # another address is its own
    assert (await store.failed("10.0.0.2")).count == 1
    clock.now += 200
    assert await store.locked("10.0.0.1") is None
    assert (await store.failed("10.0.0.1")).retry_after is None


async def test_a_passed_window_starts_the_count_again(store_and_clock: tuple[FailureStore, Clock]) -> None:
    store, clock = store_and_clock
    await store.failed("a")
    await store.failed("a")
    clock.now += 60
    assert (await store.failed("a")).count == 1
    clock.now += 59
    assert (await store.failed("a")).count == 2
    assert (await store.failed("a")).retry_after == pytest.approx(300.0)


async def test_redis_counts_are_shared_between_replicas(redis_url: str, unique_prefix: str) -> None:
    clock = Clock()
    one = RedisFailureStore(Redis.from_url(redis_url), POLICY, prefix=unique_prefix, clock=clock)
    two = RedisFailureStore(Redis.from_url(redis_url), POLICY, prefix=unique_prefix, clock=clock)
    try:
        assert (await one.failed("198.51.100.4")).count == 1
        assert (await two.failed("198.51.100.4")).count == 2
        assert (await one.failed("198.51.100.4")).retry_after == pytest.approx(300.0)
        assert await two.locked("198.51.100.4") == pytest.approx(300.0)
        assert (await two.failed("198.51.100.4")).retry_after == pytest.approx(300.0)
    finally:
        await one.aclose()
        await two.aclose()


async def test_a_known_lockout_costs_no_redis_call(redis_url: str, unique_prefix: str) -> None:
    clock = Clock()
    raw = Redis.from_url(redis_url)
    store = RedisFailureStore(Redis.from_url(redis_url), POLICY, prefix=unique_prefix, clock=clock)
    try:
        for _ in range(3):
            await store.failed("a")
        # Take the lockout out of Redis: this replica still refuses from what it learnt,
        # so it did not ask Redis; a replica that never saw it asks Redis and finds nothing.
        await raw.delete(f"{unique_prefix}authfail:a")
        assert (await store.failed("a")).retry_after == pytest.approx(300.0)
        assert await store.locked("a") == pytest.approx(300.0)
        fresh = RedisFailureStore(Redis.from_url(redis_url), POLICY, prefix=unique_prefix, clock=clock)
        assert await fresh.locked("a") is None
        await fresh.aclose()
        clock.now += 300
        assert await store.locked("a") is None
    finally:
        await store.aclose()
        await raw.aclose()


async def test_redis_keys_expire_once_they_say_nothing(redis_url: str, unique_prefix: str) -> None:
    raw = Redis.from_url(redis_url)
    store = RedisFailureStore(Redis.from_url(redis_url), POLICY, prefix=unique_prefix)
    try:
        await store.failed("a")
        assert 0 < await raw.ttl(f"{unique_prefix}authfail:a") <= 61
        await store.failed("a")
        await store.failed("a")
        assert 61 < await raw.ttl(f"{unique_prefix}authfail:a") <= 301
    finally:
        await store.aclose()
        await raw.aclose()


async def test_while_redis_is_down_failures_are_counted_in_process(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    store = RedisFailureStore(
        redis_client(f"redis://127.0.0.1:{free_port()}/0"), POLICY, prefix="pbtest:", clock=clock
    )
    try:
        with caplog.at_level(logging.WARNING, logger="patchbay.auth"):
            outcomes = [await store.failed("a") for _ in range(3)]
        assert [o.count for o in outcomes] == [1, 2, 3] and outcomes[-1].retry_after == pytest.approx(300.0)
        assert await store.locked("a") == pytest.approx(300.0)
        warnings = [r for r in caplog.records if "auth failure store unreachable" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        await store.aclose()


async def test_the_in_process_store_forgets_the_least_recently_failed_first() -> None:
    clock = Clock()
    store = InProcessFailureStore(POLICY, clock=clock, max_addresses=2)
    await store.failed("a")
    await store.failed("b")
    await store.failed("a")
    await store.failed("c")
    assert len(store) == 2
    assert (await store.failed("b")).count == 1  # forgotten
    assert (await store.failed("c")).count == 2


async def test_off_and_the_factory(redis_url: str) -> None:
    off = NoFailureStore()
    for _ in range(100):
        assert (await off.failed("a")).retry_after is None
    assert await off.locked("a") is None
    assert isinstance(make_failure_store(None, redis_url), NoFailureStore)
    assert isinstance(make_failure_store(POLICY, None), InProcessFailureStore)
    shared = make_failure_store(POLICY, redis_url)
    assert isinstance(shared, RedisFailureStore)
    await shared.aclose()


async def test_the_in_process_store_drops_a_state_that_says_nothing_any_more() -> None:
    clock = Clock()
    store = InProcessFailureStore(POLICY, clock=clock)
    await store.failed("a")
    clock.now += 59
    assert await store.locked("a") is None and len(store) == 1
    clock.now += 1
    assert await store.locked("a") is None and len(store) == 0
