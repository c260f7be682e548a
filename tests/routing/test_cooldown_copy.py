"""The Redis cooldown store's local copy: plans read it while notices are heard, a notice from
another replica drops a profile's copy, a copy is never older than its bound, this process's
own writes update it at once, and without a subscription every plan reads Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from foundation.audit import MemoryAudit
from providers.contract import ErrorClass
from providers.vault.keyring import Keyring, StaticKeys, new_master_key
from providers.vault.store import Vault
from routing.cooldown import Failure
from routing.cooldown_store import RedisCooldownStore
from routing.redis_health import redis_client
from routing.registry import Registry
from server.db import Database

pytestmark = pytest.mark.redis

T0 = 1_000_000.0
RATE_LIMITED = Failure(ErrorClass.RATE_LIMIT, "m", retry_after=60)


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


class CountingRedis(Redis):
    """Counts MGETs; `during_read` runs while one is under way (after Redis answered it)."""

    mgets = 0
    during_read: Callable[[], None] | None = None

    async def mget(self, *args: Any, **kwargs: Any) -> Any:
        self.mgets += 1
        values = await super().mget(*args, **kwargs)
        if self.during_read is not None:
            self.during_read()
        return values


@pytest.fixture
async def clients(redis_url: str, unique_prefix: str) -> AsyncIterator[Callable[[], CountingRedis]]:
    made: list[CountingRedis] = []

    def make() -> CountingRedis:
        made.append(CountingRedis.from_url(redis_url))
        return made[-1]

    yield make
    cleanup = Redis.from_url(redis_url)
    keys = [k async for k in cleanup.scan_iter(match=unique_prefix + "*")]
    if keys:
        await cleanup.delete(*keys)
    await cleanup.aclose()
    for client in made:
        await client.aclose()


def replica(redis: Redis, prefix: str, clock: Clock, *, listening: bool = True) -> RedisCooldownStore:
    store = RedisCooldownStore(redis, prefix=prefix, copy_seconds=1.0, copy_clock=clock)
    store.listening = listening
    return store


async def test_plans_read_the_copy_until_it_is_older_than_the_bound(
    clients: Callable[[], CountingRedis], unique_prefix: str
) -> None:
    clock, redis = Clock(), clients()
    a = replica(redis, unique_prefix, clock)
    b = replica(clients(), unique_prefix, clock, listening=False)
    assert await a.get_many("org", ["p"]) == {}
    failed = await b.record_failure("org", "p", RATE_LIMITED, T0)  # A hears no notice here
    clock.now += 0.99
    assert await a.get_many("org", ["p"]) == {}  # planned from the copy: no read
    assert redis.mgets == 1
    clock.now += 0.01
    assert await a.get_many("org", ["p"]) == {"p": failed}
    assert redis.mgets == 2


async def test_a_notice_from_another_replica_drops_the_copy(
    clients: Callable[[], CountingRedis], unique_prefix: str
) -> None:
    clock, redis = Clock(), clients()
    a = replica(redis, unique_prefix, clock)
    b = replica(clients(), unique_prefix, clock)
    listener = clients().pubsub()
    await listener.subscribe(a.notice_channel)
    assert (await listener.get_message(timeout=5))["type"] == "subscribe"  # type: ignore[index]
    assert await a.get_many("org", ["p", "q"]) == {}
    failed = await b.record_failure("org", "p", RATE_LIMITED, T0)
    # B published with its write; A applies what arrives (as the registry's subscriber does).
    message = await listener.get_message(ignore_subscribe_messages=True, timeout=5)
    assert message is not None
    a.notice(message["data"])
    assert await a.get_many("org", ["p", "q"]) == {"p": failed}
    assert redis.mgets == 2
    assert await a.get_many("org", ["p", "q"]) == {"p": failed}  # both copies fresh again
    assert redis.mgets == 2
    await listener.aclose()


async def test_a_success_queued_before_another_replicas_cooldown_does_not_undo_it(
    clients: Callable[[], CountingRedis], unique_prefix: str
) -> None:
    """A's success is written behind; B then cools the profile down: A plans from B's cooldown."""
    clock, redis = Clock(), clients()
    a = replica(redis, unique_prefix, clock)
    b = replica(clients(), unique_prefix, clock)
    listener = clients().pubsub()
    await listener.subscribe(a.notice_channel)
    assert (await listener.get_message(timeout=5))["type"] == "subscribe"  # type: ignore[index]
    assert await a.get_many("org", ["p"]) == {}
    await a.record_success("org", "p", "m", T0)  # queued behind, not written yet
    failed = await b.record_failure("org", "p", RATE_LIMITED, T0 + 1)
    message = await listener.get_message(ignore_subscribe_messages=True, timeout=5)
    assert message is not None
    a.notice(message["data"])
    assert await a.get_many("org", ["p"]) == {"p": failed}
    await a.flush()
    assert await b.get_many("org", ["p"]) == {"p": failed}  # nothing overwrote it in Redis
    await listener.aclose()


async def test_own_writes_update_the_copy_and_own_notices_are_ignored(
    clients: Callable[[], CountingRedis], unique_prefix: str
) -> None:
    clock, redis = Clock(), clients()
    a = replica(redis, unique_prefix, clock)
    listener = clients().pubsub()
    await listener.subscribe(a.notice_channel)
    await listener.get_message(timeout=5)
    assert await a.get_many("org", ["p"]) == {}
    failed = await a.record_failure("org", "p", RATE_LIMITED, T0)
    assert await a.get_many("org", ["p"]) == {"p": failed}  # at once, without a read
    message = await listener.get_message(ignore_subscribe_messages=True, timeout=5)
    assert message is not None
    a.notice(message["data"])  # its own: nothing to drop
    assert await a.get_many("org", ["p"]) == {"p": failed}
    # A success written behind moves the copy's `last_used` too, still without a read.
    await a.record_success("org", "p", "other-model", T0 + 1)
    await a.flush()
    assert (await a.get_many("org", ["p"]))["p"].last_used == T0 + 1
    await a.clear("org", "p")
    assert await a.get_many("org", ["p"]) == {}
    assert redis.mgets == 2  # the first read, and the one after the clear
    await listener.aclose()


async def test_a_read_that_overlapped_a_notice_is_not_kept(
    clients: Callable[[], CountingRedis], unique_prefix: str
) -> None:
    clock, redis = Clock(), clients()
    a = replica(redis, unique_prefix, clock)
    redis.during_read = lambda: a.notice(b"another-replica " + a.key("org", "p").encode())
    assert await a.get_many("org", ["p"]) == {}
    redis.during_read = None
    assert await a.get_many("org", ["p"]) == {}
    assert await a.get_many("org", ["p"]) == {}
    assert redis.mgets == 2  # the overlapped read was used once, then read again and kept


async def test_without_the_subscription_every_plan_reads_redis(
    clients: Callable[[], CountingRedis], unique_prefix: str
) -> None:
    clock, redis = Clock(), clients()
    a = replica(redis, unique_prefix, clock)
    assert await a.get_many("org", ["p"]) == {}
    a.listening = False  # the subscription was lost: notices may be missed
    for _ in range(3):
        assert await a.get_many("org", ["p"]) == {}
    assert redis.mgets == 4
    a.listening = True  # confirmed again: nothing read before counts
    assert await a.get_many("org", ["p"]) == {}
    assert await a.get_many("org", ["p"]) == {}
    assert redis.mgets == 5


class Observed(RedisCooldownStore):
    """Sets `confirmed` when its subscription is confirmed and `heard` when a notice arrives."""

    def __init__(self, redis: Redis, prefix: str, clock: Clock) -> None:
        super().__init__(redis, prefix=prefix, copy_seconds=1.0, copy_clock=clock)
        self.confirmed = asyncio.Event()
        self.heard = asyncio.Event()

    @property
    def listening(self) -> bool:
        return self._listening

    @listening.setter
    def listening(self, value: bool) -> None:
        RedisCooldownStore.listening.fset(self, value)  # type: ignore[attr-defined]
        if value:
            self.confirmed.set()

    def notice(self, data: bytes | str) -> None:
        super().notice(data)
        self.heard.set()


async def test_the_registry_subscription_carries_cooldown_notices(
    db: Database, redis_url: str, clients: Callable[[], CountingRedis], unique_prefix: str
) -> None:
    vault = Vault(StaticKeys(Keyring((new_master_key("v1"),))), db.sessions, MemoryAudit())
    clock, redis = Clock(), clients()
    a = Observed(redis, unique_prefix, clock)
    b = replica(clients(), unique_prefix, clock, listening=False)
    registry = Registry(
        db.sessions,
        vault,
        redis=redis_client(redis_url),
        channel=unique_prefix + "config",
        poll_interval=3600,
    )
    registry.add_notice_listener(a)
    await registry.start()
    try:
        await asyncio.wait_for(a.confirmed.wait(), 5)
        assert await a.get_many("org", ["p"]) == {}
        failed = await b.record_failure("org", "p", RATE_LIMITED, T0)
        await asyncio.wait_for(a.heard.wait(), 5)
        assert await a.get_many("org", ["p"]) == {"p": failed}
        assert redis.mgets == 2
    finally:
        await registry.aclose()
