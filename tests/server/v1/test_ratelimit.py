"""Per-key token buckets, in process and in Redis, on a clock the test drives; Redis down fails
open to this process's own buckets."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from routing.redis_health import StoreHealth, redis_client
from server.v1.ratelimit import (
    InProcessRateLimiter,
    RateLimit,
    RateLimiter,
    RedisRateLimiter,
    Unlimited,
    make_rate_limiter,
)
from tests.emulators.harness import free_port
from tests.emulators.tcp_proxy import TcpProxy


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def limiter_and_clock(
    request: pytest.FixtureRequest, unique_prefix: str
) -> AsyncIterator[tuple[RateLimiter, Clock]]:
    clock = Clock()
    limit = RateLimit(requests=3, per_seconds=60)
    if request.param == "memory":
        yield InProcessRateLimiter(limit, clock=clock), clock
        return
    redis_url = request.getfixturevalue("redis_url")
    limiter = RedisRateLimiter(Redis.from_url(redis_url), limit, prefix=unique_prefix, clock=clock)
    yield limiter, clock
    await limiter.aclose()


async def test_bucket_refuses_then_refills(limiter_and_clock: tuple[RateLimiter, Clock]) -> None:
    limiter, clock = limiter_and_clock
    assert [(await limiter.hit("key_a")).allowed for _ in range(3)] == [True, True, True]
    refused = await limiter.hit("key_a")
    assert not refused.allowed and refused.retry_after == pytest.approx(20.0)
    assert (await limiter.hit("key_b")).allowed  # another key has its own bucket
    clock.now += 19.9
    assert not (await limiter.hit("key_a")).allowed
    clock.now += 0.2
    assert (await limiter.hit("key_a")).allowed
    assert not (await limiter.hit("key_a")).allowed


async def test_redis_buckets_are_shared_between_replicas(redis_url: str, unique_prefix: str) -> None:
    clock = Clock()
    limit = RateLimit(requests=2, per_seconds=10)
    one = RedisRateLimiter(Redis.from_url(redis_url), limit, prefix=unique_prefix, clock=clock)
    two = RedisRateLimiter(Redis.from_url(redis_url), limit, prefix=unique_prefix, clock=clock)
    try:
        assert (await one.hit("k")).allowed and (await two.hit("k")).allowed
        assert not (await one.hit("k")).allowed and not (await two.hit("k")).allowed
    finally:
        await one.aclose()
        await two.aclose()


async def test_unlimited_and_validation() -> None:
    assert (await Unlimited().hit("k")).allowed
    with pytest.raises(ValueError):
        RateLimit(requests=0)
    assert RateLimit(requests=10, per_seconds=5, burst=2).capacity == 2.0


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    return " ".join(r.getMessage() + str(getattr(r, "fields", "")) for r in caplog.records)


async def test_redis_down_fails_open_to_the_per_process_limit(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="patchbay.api")
    limiter = make_rate_limiter(
        RateLimit(requests=2, per_seconds=60), f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
    )
    assert isinstance(limiter, RedisRateLimiter)
    try:
        assert [(await limiter.hit("key_a")).allowed for _ in range(2)] == [True, True]
        refused = await limiter.hit("key_a")
        assert not refused.allowed and 0 < refused.retry_after <= 30.0  # real time moves meanwhile
        assert (await limiter.hit("key_b")).allowed
    finally:
        await limiter.aclose()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].getMessage() == (
        "rate limit store unreachable; limiting requests per process until it is back"
    )
    assert getattr(warnings[0], "fields", None) == {"error": "ConnectionError"}
    assert "hunter2" not in _logged(caplog)


async def test_an_outage_backs_off_then_the_shared_buckets_take_over_again(
    redis_url: str, unique_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="patchbay.api")
    target = Redis.from_url(redis_url)
    clock, health_clock = Clock(), Clock()
    health = StoreHealth(
        "rate limit store",
        "limiting requests per process",
        logger=logging.getLogger("patchbay.api"),
        backoff=1.5,
        clock=health_clock,
    )
    proxy = await TcpProxy.to_url(redis_url).open()
    limiter = RedisRateLimiter(
        redis_client(proxy.url(redis_url)),
        RateLimit(requests=3, per_seconds=60),
        prefix=unique_prefix,
        clock=clock,
        health=health,
    )
    bucket = f"{unique_prefix}ratelimit:k"
    try:
        assert (await limiter.hit("k")).allowed
        assert (await limiter.hit("k")).allowed  # the shared bucket has 1 token left
        assert await target.exists(bucket)
        await proxy.close()
        # Redis gone: this process's own bucket (full) serves, and still limits.
        assert [(await limiter.hit("k")).allowed for _ in range(4)] == [True, True, True, False]
        await proxy.open()
        attempts = proxy.accepted
        assert not (await limiter.hit("k")).allowed  # within the back-off: Redis is not asked
        assert proxy.accepted == attempts
        health_clock.now += 1.5
        assert (await limiter.hit("k")).allowed  # the probe: the shared bucket's last token
        assert proxy.accepted == attempts + 1
        refused = await limiter.hit("k")
        assert not refused.allowed and refused.retry_after == pytest.approx(20.0)
        clock.now += 20
        assert (await limiter.hit("k")).allowed
        assert not (await limiter.hit("k")).allowed
    finally:
        await limiter.aclose()
        await proxy.close()
        await target.delete(bucket)
        await target.aclose()
    levels = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert levels == [
        ("WARNING", "rate limit store unreachable; limiting requests per process until it is back"),
        ("INFO", "rate limit store reachable again"),
    ]
