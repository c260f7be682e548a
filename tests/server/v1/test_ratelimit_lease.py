"""The Redis rate limiter's leases: most requests of a busy key make no Redis call, two
limiters sharing one bucket never pass more than the limit between them, a refusal carries
the bucket's wait, and unused leased tokens go back once the key is idle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from server.v1.ratelimit import RateLimit, RedisRateLimiter, _Lease


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class CountingLimiter(RedisRateLimiter):
    """Counts its script calls that take tokens."""

    calls = 0

    async def _take(self, key_id: str, lease: _Lease) -> float | None:
        self.calls += 1
        return await super()._take(key_id, lease)


@pytest.fixture
async def redis(redis_url: str, unique_prefix: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    keys = [key async for key in client.scan_iter(match=f"{unique_prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def make(
    redis_url: str, unique_prefix: str
) -> AsyncIterator[Callable[[RateLimit, Clock], CountingLimiter]]:
    made: list[CountingLimiter] = []

    def limiter(limit: RateLimit, clock: Clock) -> CountingLimiter:
        made.append(
            CountingLimiter(
                Redis.from_url(redis_url), limit, prefix=unique_prefix, clock=clock, idle_clock=clock
            )
        )
        return made[-1]

    yield limiter
    for each in made:
        await each.aclose()


async def _tokens(redis: Redis, prefix: str, key_id: str = "k") -> float:
    raw = await redis.hget(f"{prefix}ratelimit:{key_id}", "t")
    assert raw is not None
    return float(raw)


async def test_two_limiters_never_pass_more_than_the_limit_and_lose_nothing(
    make: Callable[[RateLimit, Clock], CountingLimiter],
) -> None:
    clock = Clock()  # frozen: the bucket does not refill while the test runs
    limit = RateLimit(requests=1_000, per_seconds=60)
    one, two = make(limit, clock), make(limit, clock)
    burst = await asyncio.gather(*(limiter.hit("k") for _ in range(600) for limiter in (one, two)))
    passed = sum(d.allowed for d in burst)
    assert passed <= 1_000
    assert one.calls + two.calls < len(burst) // 4  # most requests were answered from a lease
    # What is still leased goes back to the bucket, and the rest of the limit can be drawn, no more.
    await one.give_back_idle(everything=True)
    await two.give_back_idle(everything=True)
    while True:
        drawn = [await one.hit("k"), await two.hit("k")]
        passed += sum(d.allowed for d in drawn)
        if not any(d.allowed for d in drawn):
            break
    assert passed == 1_000


async def test_a_refusal_carries_the_wait_until_the_bucket_has_a_token(
    make: Callable[[RateLimit, Clock], CountingLimiter],
) -> None:
    clock = Clock()
    limit = RateLimit(requests=100, per_seconds=60)  # a token every 0.6 s
    one, two = make(limit, clock), make(limit, clock)
    passed = 0
    while True:
        first, second = await one.hit("k"), await two.hit("k")
        passed += first.allowed + second.allowed
        if not first.allowed and not second.allowed:
            break
    assert passed == 100
    assert 0 < first.retry_after <= 0.6 and second.retry_after == first.retry_after
    clock.now += first.retry_after
    assert (await one.hit("k")).allowed
    assert not (await two.hit("k")).allowed


async def test_an_idle_lease_goes_back_to_the_bucket(
    make: Callable[[RateLimit, Clock], CountingLimiter], redis: Redis, unique_prefix: str
) -> None:
    clock = Clock()
    limiter = make(RateLimit(requests=1_000, per_seconds=3_600), clock)
    assert (await limiter.hit("k")).allowed
    # The request's token and a lease of 1/32 of the rest (31) came out of the bucket.
    assert await _tokens(redis, unique_prefix) == 1_000 - 1 - 31
    assert [(await limiter.hit("k")).allowed for _ in range(10)] == [True] * 10
    assert limiter.calls == 1 and await _tokens(redis, unique_prefix) == 968
    assert await limiter.give_back_idle() == 0  # used just now
    clock.now += 1.0
    await limiter.give_back_idle()  # (or its sweeper, had a second of real time passed: the same)
    assert await _tokens(redis, unique_prefix) == pytest.approx(968 + 21 + 1.0 * 1_000 / 3_600)


async def test_the_lease_is_fetched_again_before_it_runs_out(
    make: Callable[[RateLimit, Clock], CountingLimiter], redis: Redis, unique_prefix: str
) -> None:
    clock = Clock()
    limiter = make(RateLimit(requests=1_000, per_seconds=3_600), clock)
    for _ in range(17):  # the first takes the lease of 31; 16 more leave half of it (15)
        assert (await limiter.hit("k")).allowed
    fetch = limiter._leases["k"].fetch
    assert fetch is not None  # the background fetch has started ...
    await fetch
    # ... and taken 1/32 of what the bucket had left (968 -> 938): no request waited for it.
    assert limiter.calls == 2 and await _tokens(redis, unique_prefix) == 968 - 30
    # 15 + 30 held: the next 29 requests leave more than half the new lease, and call nothing.
    assert [(await limiter.hit("k")).allowed for _ in range(29)] == [True] * 29
    assert limiter.calls == 2 and limiter._leases["k"].fetch is None


async def test_a_small_limit_is_never_leased(
    make: Callable[[RateLimit, Clock], CountingLimiter], redis: Redis, unique_prefix: str
) -> None:
    clock = Clock()
    limiter = make(RateLimit(requests=60, per_seconds=86_400), clock)
    for expected in range(59, 49, -1):
        assert (await limiter.hit("k")).allowed
        assert await _tokens(redis, unique_prefix) == expected  # each request its own token
    assert limiter.calls == 10
