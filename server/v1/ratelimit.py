"""Per-API-key request-rate limits: a token bucket, in Redis when configured, else in process.

Each key has a bucket of `burst` tokens refilled at `requests / per_seconds` tokens a second;
a request takes one token or is refused with the time until one is back (the `retry-after`
of the 429). In Redis the read-refill-take step is one Lua script, atomic across replicas;
the time comes from the caller's clock so tests can drive it.

When Redis cannot be reached the limiter fails open to an in-process bucket with the same
limit (what a deployment without Redis enforces): requests keep being served and each
process still limits each key. One warning is logged per outage, Redis is tried again at
most once a second meanwhile, and the shared buckets take over again once it answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from routing.redis_health import STORE_ERRORS, StoreHealth, redis_client

log = logging.getLogger("patchbay.api")


@dataclass(frozen=True, slots=True)
class RateLimit:
    requests: int
    per_seconds: float = 60.0
    burst: int | None = None
    """Bucket size; defaults to `requests` (a full window's worth may arrive at once)."""

    def __post_init__(self) -> None:
        if self.requests < 1 or self.per_seconds <= 0 or (self.burst is not None and self.burst < 1):
            raise ValueError("a rate limit needs requests >= 1, per_seconds > 0 and burst >= 1")

    @property
    def capacity(self) -> float:
        return float(self.burst if self.burst is not None else self.requests)

    @property
    def rate(self) -> float:
        return self.requests / self.per_seconds


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0


ALLOWED = Decision(True)


class RateLimiter(Protocol):
    async def hit(self, key_id: str) -> Decision: ...

    async def aclose(self) -> None: ...


class Unlimited:
    async def hit(self, key_id: str) -> Decision:
        return ALLOWED

    async def aclose(self) -> None:
        return None


class InProcessRateLimiter:
    """Buckets in a dict; updates run on the event loop without awaiting, so they are atomic."""

    def __init__(self, limit: RateLimit, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    async def hit(self, key_id: str) -> Decision:
        now = self._clock()
        capacity, rate = self._limit.capacity, self._limit.rate
        tokens, at = self._buckets.get(key_id, (capacity, now))
        tokens = min(capacity, tokens + max(0.0, now - at) * rate)
        if tokens >= 1.0:
            self._buckets[key_id] = (tokens - 1.0, now)
            return ALLOWED
        self._buckets[key_id] = (tokens, now)
        return Decision(False, (1.0 - tokens) / rate)

    async def aclose(self) -> None:
        self._buckets.clear()


_BUCKET_LUA = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local data = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(data[1]) or capacity
local ts = tonumber(data[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return {allowed, tostring(wait)}
"""


class RedisRateLimiter:
    """Shared buckets under `<prefix>ratelimit:<key id>`, one script call per request.

    While `health` reports Redis down, `hit` takes from this process's own buckets (see the
    module doc); they are dropped when Redis answers again, so the next outage starts full.
    """

    def __init__(
        self,
        redis: Redis,
        limit: RateLimit,
        *,
        prefix: str = "patchbay:",
        clock: Callable[[], float] = time.time,
        health: StoreHealth | None = None,
    ) -> None:
        self._redis = redis
        self._limit = limit
        self._prefix = prefix
        self._clock = clock
        self._script = redis.register_script(_BUCKET_LUA)
        self._local = InProcessRateLimiter(limit, clock=clock)
        self._health = health or StoreHealth("rate limit store", "limiting requests per process", logger=log)

    async def hit(self, key_id: str) -> Decision:
        if self._health.should_try():
            try:
                allowed, wait = await self._script(
                    keys=[f"{self._prefix}ratelimit:{key_id}"],
                    args=[self._limit.capacity, self._limit.rate, repr(self._clock())],
                )
            except STORE_ERRORS as exc:
                self._health.failed(exc)
            else:
                if self._health.succeeded():
                    await self._local.aclose()
                if int(allowed):
                    return ALLOWED
                return Decision(False, float(wait))
        return await self._local.hit(key_id)

    async def aclose(self) -> None:
        await self._redis.aclose()


def make_rate_limiter(
    limit: RateLimit | None, redis_url: str | None, *, prefix: str = "patchbay:"
) -> RateLimiter:
    """Redis when the deployment configures it (PATCHBAY_REDIS_URL), with a client that gives
    up within about 2 s (`routing.redis_health.redis_client`); else in process."""
    if limit is None:
        return Unlimited()
    if redis_url:
        return RedisRateLimiter(redis_client(redis_url), limit, prefix=prefix)
    return InProcessRateLimiter(limit)
