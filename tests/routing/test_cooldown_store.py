from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from providers.contract import ErrorClass
from routing.cooldown import Failure, ProfileState, block_for
from routing.cooldown_store import (
    CooldownStore,
    InProcessCooldownStore,
    RedisCooldownStore,
    Update,
    make_cooldown_store,
)
from routing.redis_health import StoreHealth, redis_client
from tests.emulators.harness import free_port
from tests.emulators.tcp_proxy import SilentServer, TcpProxy

T0 = 1_000_000.0


@pytest.fixture
async def redis_clients(redis_url: str, unique_prefix: str) -> AsyncIterator[Callable[[], Redis]]:
    """Independent Redis clients (one per simulated replica); keys under the prefix are removed after."""
    clients: list[Redis] = []

    def make() -> Redis:
        client = Redis.from_url(redis_url)
        clients.append(client)
        return client

    yield make
    cleanup = Redis.from_url(redis_url)
    keys = [k async for k in cleanup.scan_iter(match=unique_prefix + "*")]
    if keys:
        await cleanup.delete(*keys)
    await cleanup.aclose()
    for client in clients:
        await client.aclose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest, unique_prefix: str) -> CooldownStore:
    if request.param == "memory":
        return InProcessCooldownStore()
    make: Callable[[], Redis] = request.getfixturevalue("redis_clients")
    return RedisCooldownStore(make(), prefix=unique_prefix)


async def test_failure_then_success_round_trip(store: CooldownStore) -> None:
    state = await store.record_failure(
        "org", "openai:a", Failure(ErrorClass.RATE_LIMIT, "m", retry_after=20), T0
    )
    assert state.cooldown_until == T0 + 20
    states = await store.get_many("org", ["openai:a", "openai:b"])
    assert set(states) == {"openai:a"}
    assert states["openai:a"] == state
    await store.record_success("org", "openai:a", "m", T0 + 30)
    assert (await store.get_many("org", ["openai:a"]))["openai:a"].cooldown_until is None


async def test_imported_state_is_carried_over_once(store: CooldownStore) -> None:
    imported = ProfileState(
        last_failure_at=T0 - 10,
        error_count=1,
        failure_counts={"billing": 1},
        disabled_until=T0 + 600,
        disabled_reason="billing",
    )
    first = await store.carry_over("org_a", "anthropic:default", imported)
    again = await store.carry_over("org_a", "anthropic:default", imported)
    assert first == again == imported
    assert (await store.get_many("org_a", ["anthropic:default"]))["anthropic:default"] == imported
    assert await store.get_many("org_b", ["anthropic:default"]) == {}


async def test_orgs_are_separate(store: CooldownStore) -> None:
    await store.record_failure("org1", "openai:a", Failure(ErrorClass.AUTH, "m"), T0)
    assert await store.get_many("org2", ["openai:a"]) == {}
    await store.clear("org1", "openai:a")
    assert await store.get_many("org1", ["openai:a"]) == {}


async def test_concurrent_failures_are_counted_atomically(store: CooldownStore) -> None:
    failure = Failure(ErrorClass.SERVER_ERROR, "m")
    await asyncio.gather(*(store.record_failure("org", "openai:a", failure, T0) for _ in range(25)))
    state = (await store.get_many("org", ["openai:a"]))["openai:a"]
    assert state.error_count == 25
    assert state.cooldown_until == T0 + 30


@pytest.mark.redis
async def test_two_replicas_share_a_cooldown(redis_clients: Callable[[], Redis], unique_prefix: str) -> None:
    replica_a = RedisCooldownStore(redis_clients(), prefix=unique_prefix)
    replica_b = RedisCooldownStore(redis_clients(), prefix=unique_prefix)
    await replica_a.record_failure(
        "org", "openai:a", Failure(ErrorClass.RATE_LIMIT, "gpt-4o", retry_after=45), T0
    )
    seen = (await replica_b.get_many("org", ["openai:a"]))["openai:a"]
    block = block_for(seen, "gpt-4o", T0 + 10)
    assert block is not None and block.label == "cooldown:rate_limit"
    assert block_for(seen, "gpt-4o", T0 + 45) is None
    # Each replica's updates build on the other's: concurrent writers on two clients.
    failure = Failure(ErrorClass.SERVER_ERROR, "gpt-4o")
    await asyncio.gather(
        *(r.record_failure("org", "openai:b", failure, T0) for r in (replica_a, replica_b) for _ in range(10))
    )
    assert (await replica_a.get_many("org", ["openai:b"]))["openai:b"].error_count == 20


@pytest.mark.redis
async def test_redis_keys_are_namespaced_and_expire_eventually(
    redis_clients: Callable[[], Redis], unique_prefix: str
) -> None:
    client = redis_clients()
    store = RedisCooldownStore(client, prefix=unique_prefix, retention_seconds=3600)
    await store.record_failure("org", "openai:a", Failure(ErrorClass.AUTH, "m"), T0)
    key = store.key("org", "openai:a")
    assert key.startswith(unique_prefix)
    ttl = await client.ttl(key)
    assert 0 < ttl <= 3600


def test_store_choice_follows_configuration() -> None:
    assert isinstance(make_cooldown_store(None), InProcessCooldownStore)
    assert isinstance(make_cooldown_store("redis://127.0.0.1:6379/0"), RedisCooldownStore)


class _ClosingRedis:
    def __init__(self) -> None:
        self.closed = 0

    def register_script(self, script: str) -> object:
        return object()

    async def aclose(self) -> None:
        self.closed += 1


async def test_aclose_closes_the_redis_client_and_is_harmless_in_process() -> None:
    client = _ClosingRedis()
    await RedisCooldownStore(client, prefix="t:").aclose()  # type: ignore[arg-type]
    assert client.closed == 1
    await InProcessCooldownStore().aclose()


class _CountingStore(RedisCooldownStore):
    watched = 0

    async def _watched_update(self, key: str, profile_id: str, update: Update) -> ProfileState:
        self.watched += 1
        return await super()._watched_update(key, profile_id, update)


@pytest.mark.redis
async def test_a_reset_is_one_compare_and_set_and_a_plain_success_is_written_behind(
    redis_clients: Callable[[], Redis], unique_prefix: str
) -> None:
    store = _CountingStore(redis_clients(), prefix=unique_prefix)
    observer = RedisCooldownStore(redis_clients(), prefix=unique_prefix)
    await store.record_failure("org", "openai:a", Failure(ErrorClass.SERVER_ERROR, "m"), T0)
    assert store.watched == 1
    await store.get_many("org", ["openai:a", "openai:new"])
    # Resetting a failure is written before the answer: one compare-and-set of the value read.
    assert (await store.record_success("org", "openai:a", "m", T0 + 1)) == ProfileState(last_used=T0 + 1)
    assert await observer.get_many("org", ["openai:a"]) == {"openai:a": ProfileState(last_used=T0 + 1)}
    # A success that only moves `last_used` is written behind; this process reads it back at once.
    assert (await store.record_success("org", "openai:new", "m", T0 + 1)) == ProfileState(last_used=T0 + 1)
    assert store.watched == 1  # no WATCH/MULTI round trips for either
    assert await store.get_many("org", ["openai:a", "openai:new"]) == {
        "openai:a": ProfileState(last_used=T0 + 1),
        "openai:new": ProfileState(last_used=T0 + 1),
    }
    await store.flush()
    assert await observer.get_many("org", ["openai:new"]) == {"openai:new": ProfileState(last_used=T0 + 1)}
    # What this process wrote is good for a compare-and-set too: a reset needs no fresh read.
    await store.record_failure("org", "openai:a", Failure(ErrorClass.SERVER_ERROR, "m"), T0 + 2)
    await store.get_many("org", ["openai:a"])
    assert (await store.record_success("org", "openai:a", "m", T0 + 3)) == ProfileState(last_used=T0 + 3)
    assert store.watched == 2
    await store.record_failure("org", "openai:a", Failure(ErrorClass.SERVER_ERROR, "m"), T0 + 4)
    assert (await store.record_success("org", "openai:a", "m", T0 + 5)) == ProfileState(last_used=T0 + 5)
    assert store.watched == 3
    # When the value changed elsewhere meanwhile, the compare-and-set fails and WATCH/MULTI redoes it.
    await store.record_failure("org", "openai:a", Failure(ErrorClass.SERVER_ERROR, "m"), T0 + 6)
    await observer.record_failure("org", "openai:a", Failure(ErrorClass.SERVER_ERROR, "m"), T0 + 7)
    assert (await store.record_success("org", "openai:a", "m", T0 + 8)) == ProfileState(last_used=T0 + 8)
    assert store.watched == 5
    await store.aclose()


@pytest.mark.redis
async def test_a_success_written_behind_never_overwrites_a_cooldown_written_after_the_read(
    redis_clients: Callable[[], Redis], unique_prefix: str
) -> None:
    replica_a = RedisCooldownStore(redis_clients(), prefix=unique_prefix)
    replica_b = RedisCooldownStore(redis_clients(), prefix=unique_prefix)
    assert await replica_a.get_many("org", ["openai:a"]) == {}
    # Between A's read and A's success write, B puts gpt-4o into a cooldown.
    cooled = await replica_b.record_failure(
        "org", "openai:a", Failure(ErrorClass.RATE_LIMIT, "gpt-4o", retry_after=45), T0
    )
    await replica_a.record_success("org", "openai:a", "gpt-4o-mini", T0 + 1)
    await replica_a.flush()  # the compare-and-set finds B's value and leaves it
    stored = (await replica_b.get_many("org", ["openai:a"]))["openai:a"]
    assert stored == cooled and stored.cooldown_model == "gpt-4o" and stored.cooldown_until == T0 + 45
    assert (await replica_a.get_many("org", ["openai:a"]))["openai:a"] == cooled
    await replica_a.aclose()


@pytest.mark.redis
async def test_a_failure_after_a_queued_success_wins(
    redis_clients: Callable[[], Redis], unique_prefix: str
) -> None:
    store = RedisCooldownStore(redis_clients(), prefix=unique_prefix)
    await store.get_many("org", ["openai:a"])
    await store.record_success("org", "openai:a", "m", T0)  # queued, not written yet
    failed = await store.record_failure("org", "openai:a", Failure(ErrorClass.SERVER_ERROR, "m"), T0 + 1)
    await store.flush()
    assert (await store.get_many("org", ["openai:a"]))["openai:a"] == failed
    await store.aclose()


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    return " ".join(r.getMessage() + str(getattr(r, "fields", "")) for r in caplog.records)


async def test_redis_down_keeps_cooldowns_in_process(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="patchbay.routing")
    store = make_cooldown_store(f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0")
    assert isinstance(store, RedisCooldownStore)
    try:
        state = await store.record_failure(
            "org", "openai:a", Failure(ErrorClass.RATE_LIMIT, "m", retry_after=20), T0
        )
        assert state.cooldown_until == T0 + 20
        assert await store.get_many("org", ["openai:a", "openai:b"]) == {"openai:a": state}
        await store.record_success("org", "openai:b", "m", T0 + 1)
        assert (await store.get_many("org", ["openai:b"]))["openai:b"].last_used == T0 + 1
        await store.clear("org", "openai:a")
        assert await store.get_many("org", ["openai:a"]) == {}
    finally:
        await store.aclose()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].getMessage() == (
        "cooldown store unreachable; keeping auth-profile cooldowns in this process until it is back"
    )
    assert getattr(warnings[0], "fields", None) == {"error": "ConnectionError"}
    assert "hunter2" not in _logged(caplog)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.redis
async def test_after_an_outage_redis_serves_again_and_clears_made_meanwhile_apply(
    redis_clients: Callable[[], Redis], redis_url: str, unique_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="patchbay.routing")
    observer = RedisCooldownStore(redis_clients(), prefix=unique_prefix)
    clock = Clock()
    health = StoreHealth(
        "cooldown store", "keeping cooldowns here", logger=logging.getLogger("patchbay.routing"), clock=clock
    )
    async with TcpProxy.to_url(redis_url) as proxy:
        store = RedisCooldownStore(redis_client(proxy.url(redis_url)), prefix=unique_prefix, health=health)
        try:
            auth = await store.record_failure("org", "openai:a", Failure(ErrorClass.AUTH, "m"), T0)
            assert await observer.get_many("org", ["openai:a"]) == {"openai:a": auth}
            await proxy.close()
            # Redis gone: the shared state is out of sight, this process's own state applies.
            assert await store.get_many("org", ["openai:a"]) == {}
            limited = await store.record_failure(
                "org", "openai:b", Failure(ErrorClass.RATE_LIMIT, "m", retry_after=60), T0
            )
            await store.clear("org", "openai:a")  # its key was replaced during the outage
            await proxy.open()
            attempts = proxy.accepted
            assert await store.get_many("org", ["openai:a", "openai:b"]) == {"openai:b": limited}
            assert proxy.accepted == attempts  # within the back-off: Redis is not asked
            clock.now += 1.0
            # Back on Redis: the clear made meanwhile reached it, the outage's own state is dropped.
            assert await store.get_many("org", ["openai:a", "openai:b"]) == {}
            assert await observer.get_many("org", ["openai:a"]) == {}
            await store.record_success("org", "openai:a", "m", T0 + 1)
            await store.flush()  # a plain success is written behind
            assert await observer.get_many("org", ["openai:a"]) == {
                "openai:a": ProfileState(last_used=T0 + 1)
            }
        finally:
            await store.aclose()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "cooldown store unreachable; keeping cooldowns here until it is back"),
        ("INFO", "cooldown store reachable again"),
    ]


async def test_updates_queued_behind_a_hung_redis_do_not_each_wait_for_it() -> None:
    async with SilentServer() as silent:
        store = RedisCooldownStore(redis_client(f"redis://127.0.0.1:{silent.port}/0", timeout=0.2))
        try:
            failure = Failure(ErrorClass.SERVER_ERROR, "m")
            states = await asyncio.gather(
                *(store.record_failure("org", "openai:a", failure, T0) for _ in range(5))
            )
        finally:
            await store.aclose()
    # The first update tried Redis (and its one retry); the four queued on the profile's lock
    # saw it fail and went straight to the in-process state.
    assert silent.accepted == 2
    assert sorted(s.error_count for s in states) == [1, 2, 3, 4, 5]
