"""Per-key token buckets, in process and in Redis, on a clock the test drives."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from server.v1.ratelimit import InProcessRateLimiter, RateLimit, RateLimiter, RedisRateLimiter, Unlimited


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
