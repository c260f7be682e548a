"""Live sessions per key, in process and in Redis (shared by instances standing in for worker
processes), on a clock the test drives; Redis down fails open to the per-process limit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis

from server.realtime.session_limit import (
    InProcessSessionLimiter,
    Lease,
    RedisSessionLimiter,
    SessionLimitError,
    make_session_limiter,
)
from tests.emulators.harness import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


Factory = Callable[..., RedisSessionLimiter]


@pytest.fixture
async def limiters(redis_url: str, unique_prefix: str) -> AsyncIterator[Factory]:
    """Builds limiters sharing one Redis and prefix, each with its own client, as processes have."""
    made: list[RedisSessionLimiter] = []

    def build(limit: int, clock: Clock, lease: Lease = Lease()) -> RedisSessionLimiter:
        limiter = RedisSessionLimiter(
            Redis.from_url(redis_url), limit, prefix=unique_prefix, lease=lease, clock=clock
        )
        made.append(limiter)
        return limiter

    yield build
    for limiter in made:
        await limiter.aclose()


async def crash(limiter: RedisSessionLimiter) -> None:
    """What a killed worker leaves behind: its leases stay in Redis, never renewed nor released."""
    renewer = limiter._renewer
    assert renewer is not None
    renewer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await renewer
    limiter._renewer = None
    limiter._live.by_key.clear()


async def refused(acquire: Awaitable[None]) -> str:
    with pytest.raises(SessionLimitError) as info:
        await acquire
    return str(info.value)


async def test_in_process_limit_per_key() -> None:
    limiter = InProcessSessionLimiter(2)
    await limiter.acquire("key_a", "s1")
    await limiter.acquire("key_a", "s2")
    assert await refused(limiter.acquire("key_a", "s3")) == (
        "this key already has 2 live realtime sessions (limit 2)"
    )
    await limiter.acquire("key_b", "s4")  # another key has its own limit
    assert limiter.total == 3
    await limiter.release("key_a", "s1")
    await limiter.release("key_a", "s1")  # a second release of the same session frees nothing more
    await limiter.release("key_a", "unknown")
    await limiter.acquire("key_a", "s3")
    await refused(limiter.acquire("key_a", "s5"))
    assert limiter.total == 3
    await limiter.aclose()


async def test_redis_limit_is_shared_between_processes(limiters: Factory) -> None:
    clock = Clock()
    one, two = limiters(2, clock), limiters(2, clock)
    await one.acquire("key_a", "s1")
    await two.acquire("key_a", "s2")
    assert (
        await refused(one.acquire("key_a", "s3")) == "this key already has 2 live realtime sessions (limit 2)"
    )
    await refused(two.acquire("key_a", "s3"))
    await two.acquire("key_b", "s4")
    assert (one.total, two.total) == (1, 2)
    await one.release("key_a", "s1")
    await two.acquire("key_a", "s3")
    await refused(one.acquire("key_a", "s5"))


async def test_a_crashed_process_slot_frees_itself_when_its_lease_runs_out(limiters: Factory) -> None:
    clock = Clock()
    crashed, survivor = limiters(1, clock), limiters(1, clock)
    await crashed.acquire("key_a", "s1")
    await crash(crashed)
    clock.now += 29.9
    await refused(survivor.acquire("key_a", "s2"))
    clock.now += 0.2
    await survivor.acquire("key_a", "s2")


async def test_renewal_keeps_a_live_session_and_release_frees_it(limiters: Factory) -> None:
    clock = Clock()
    holder, other = limiters(1, clock), limiters(1, clock)
    await holder.acquire("key_a", "s1")
    clock.now += 20
    await holder.renew()
    clock.now += 25  # 45 s after acquiring: past the first lease, inside the renewed one
    await refused(other.acquire("key_a", "s2"))
    await holder.release("key_a", "s1")
    assert holder.total == 0
    await other.acquire("key_a", "s2")
    assert await other._redis.zrange(other.key("key_a"), 0, -1) == [b"s2"]


async def test_renewal_writes_back_a_lease_that_lapsed(limiters: Factory) -> None:
    """A stalled process whose lease ran out counts again once it renews (so it can go over)."""
    clock = Clock()
    stalled, other = limiters(1, clock), limiters(1, clock)
    await stalled.acquire("key_a", "s1")
    clock.now += 31
    await other.acquire("key_a", "s2")
    await stalled.renew()
    assert await other._redis.zcard(other.key("key_a")) == 2
    await other.release("key_a", "s2")
    await refused(other.acquire("key_a", "s3"))


async def test_the_renewal_loop_runs_in_the_background(limiters: Factory) -> None:
    clock = Clock()
    limiter = limiters(1, clock, Lease(seconds=30, renew_every=0.02))
    await limiter.acquire("key_a", "s1")
    clock.now = 5_000.0
    for _ in range(200):  # bounded wait for the loop's next round; the clock decides the score
        if await limiter._redis.zscore(limiter.key("key_a"), "s1") == 5_030.0:
            break
        await asyncio.sleep(0.01)
    assert await limiter._redis.zscore(limiter.key("key_a"), "s1") == 5_030.0


async def test_aclose_stops_renewing_and_hands_slots_back(limiters: Factory) -> None:
    clock = Clock()
    closing, other = limiters(1, clock), limiters(1, clock)
    await closing.acquire("key_a", "s1")
    renewer = closing._renewer
    await closing.aclose()
    assert renewer is not None and renewer.done()
    assert closing.total == 0
    await other.acquire("key_a", "s2")


async def test_redis_down_fails_open_to_the_per_process_limit(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="patchbay.realtime")
    limiter = make_session_limiter(1, f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0", timeout=0.5)
    assert isinstance(limiter, RedisSessionLimiter)
    try:
        await limiter.acquire("key_a", "s1")
        assert await refused(limiter.acquire("key_a", "s2")) == (
            "this key already has 1 live realtime sessions (limit 1)"
        )
        await limiter.acquire("key_b", "s3")
        await limiter.renew()
        await limiter.release("key_a", "s1")
        await limiter.acquire("key_a", "s2")
        assert limiter.total == 2
    finally:
        await limiter.aclose()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()
    assert getattr(warnings[0], "fields", None) == {"error": "ConnectionError"}
    logged = " ".join(r.getMessage() + str(getattr(r, "fields", "")) for r in caplog.records)
    assert "hunter2" not in logged


async def test_factory_and_lease_validation() -> None:
    assert isinstance(make_session_limiter(3, None), InProcessSessionLimiter)
    assert Lease().renew_interval == 10.0
    assert Lease(seconds=6, renew_every=1).renew_interval == 1.0
    for bad in ({"seconds": 0}, {"seconds": 30, "renew_every": 30}, {"seconds": 30, "renew_every": 0}):
        with pytest.raises(ValueError):
            Lease(**bad)


async def test_the_active_sessions_gauge_follows_admissions() -> None:
    from prometheus_client import REGISTRY

    def active() -> float:
        return REGISTRY.get_sample_value("patchbay_voice_sessions_active") or 0.0

    limiter, start = InProcessSessionLimiter(5), active()
    await limiter.acquire("key_a", "s1")
    await limiter.acquire("key_a", "s2")
    assert active() == start + 2
    await limiter.release("key_a", "s1")
    await limiter.release("key_a", "s1")  # a second release of one session changes nothing
    assert active() == start + 1
    await limiter.release("key_a", "s2")
    assert active() == start


async def test_a_reconnection_replaces_the_session_it_names_in_process() -> None:
    limiter = InProcessSessionLimiter(1)
    ended: list[str] = []
    await limiter.acquire("key_a", "s1", close=lambda: ended.append("s1"))
    await refused(limiter.acquire("key_a", "s2"))
    # Another key's session cannot be named: it stays, and the key is still at its limit.
    await limiter.acquire("key_b", "s9", close=lambda: ended.append("s9"))
    await refused(limiter.acquire("key_a", "s2", replaces="s9"))
    assert ended == []
    await limiter.acquire("key_a", "s2", replaces="s1", close=lambda: ended.append("s2"))
    assert ended == ["s1"] and limiter.total == 2
    await limiter.release("key_a", "s1")  # the replaced connection ends later: nothing more to free
    await refused(limiter.acquire("key_a", "s3"))
    await limiter.acquire("key_a", "s3", replaces="s2")
    assert ended == ["s1", "s2"] and limiter.total == 2
    await limiter.aclose()


async def test_a_reconnection_replaces_a_session_another_process_holds(
    limiters: Factory, redis_url: str
) -> None:
    """The script frees the slot and announces it; the process holding the session, hearing the
    notice (as the registry's subscription hands it over), ends it and stops renewing it."""
    clock = Clock()
    one, two = limiters(1, clock), limiters(1, clock)
    ended: list[str] = []
    listener = Redis.from_url(redis_url)
    try:
        async with listener.pubsub() as pubsub:
            await pubsub.subscribe(one.notice_channel)
            assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"
            await one.acquire("key_a", "s1", close=lambda: ended.append("s1"))
            await refused(two.acquire("key_a", "s2"))
            await two.acquire("key_b", "sb", replaces="s1")  # not a session of key_b: it stays
            await two.release("key_b", "sb")
            await two.acquire("key_a", "s2", replaces="s1", close=lambda: ended.append("s2"))
            notice = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
            assert notice is not None and notice["data"] == b"key_a:s1"
            assert ended == []
            # A renewal sent before the notice arrives writes s1 back; the notice removes it again.
            await one.renew()
            assert await listener.zrange(one.key("key_a"), 0, -1) == [b"s1", b"s2"]
            one.notice(notice["data"])
            assert ended == ["s1"] and (one.total, two.total) == (0, 1)
            await one.settled()
            assert await listener.zrange(one.key("key_a"), 0, -1) == [b"s2"]
            await one.renew()  # s1 is not written back
            assert await listener.zrange(one.key("key_a"), 0, -1) == [b"s2"]
            await refused(one.acquire("key_a", "s3"))
            # Replacing a session held in the same process ends it at once.
            await two.acquire("key_a", "s3", replaces="s2")
            assert ended == ["s1", "s2"] and two.total == 1
    finally:
        await listener.aclose()


async def test_a_renewal_in_flight_does_not_bring_back_a_session_replaced_in_the_same_process(
    limiters: Factory, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A renewal whose pipeline was built while s1 was live reaches Redis after the reconnection's
    script dropped s1: the limiter removes the slot again once that renewal has landed."""
    clock = Clock()
    limiter = limiters(1, clock)
    await limiter.acquire("key_a", "s1")
    built, gate = asyncio.Event(), asyncio.Event()
    original = limiter._redis.pipeline

    def held_pipeline(*args: object, **kwargs: object) -> object:
        pipe = original(*args, **kwargs)  # type: ignore[arg-type]
        execute = pipe.execute

        async def execute_after_gate(*a: object, **kw: object) -> object:
            built.set()
            await gate.wait()
            return await execute(*a, **kw)  # type: ignore[arg-type]

        pipe.execute = execute_after_gate  # type: ignore[method-assign,assignment]
        return pipe

    monkeypatch.setattr(limiter._redis, "pipeline", held_pipeline)
    renewal = asyncio.create_task(limiter.renew())
    await built.wait()  # the renewal holds its lock with s1 in its pipeline, not yet sent
    await limiter.acquire("key_a", "s2", replaces="s1")
    listener = Redis.from_url(redis_url)
    try:
        assert await listener.zrange(limiter.key("key_a"), 0, -1) == [b"s2"]
        gate.set()
        await renewal
        await limiter.settled()
        assert await listener.zrange(limiter.key("key_a"), 0, -1) == [b"s2"]
    finally:
        await listener.aclose()
    assert limiter.total == 1
