"""Per-API-key request-rate limits: a token bucket, in Redis when configured, else in process.

Each key has a bucket of `burst` tokens refilled at `requests / per_seconds` tokens a second;
a request takes one token or is refused with the time until one is back (the `retry-after`
of the 429). In Redis the read-refill-take step is one Lua script, atomic across replicas;
the time comes from the caller's clock so tests can drive it. A process leases small batches
of tokens from a key's shared bucket, so most requests of a busy key make no Redis call
(`RedisRateLimiter`); the replicas together still never pass more than the limit.

When Redis cannot be reached the limiter fails open to an in-process bucket with the same
limit (what a deployment without Redis enforces): requests keep being served and each
process still limits each key. One warning is logged per outage, Redis is tried again at
most once a second meanwhile, and the shared buckets take over again once it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
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


# Refill the bucket to ARGV[3], take ARGV[4] tokens (the requests waiting here) or as many as
# there are, with the wait until the next one, and when all were taken lease up to ARGV[5]
# more, never more than 1/ARGV[6] of what is left and never fewer than 2.
_LEASE_LUA = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local need = tonumber(ARGV[4])
local data = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(data[1]) or capacity
local ts = tonumber(data[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local took = math.min(need, math.floor(tokens))
tokens = tokens - took
local leased = 0
local wait = 0
if took < need then
  wait = (1 - tokens) / rate
else
  leased = math.min(tonumber(ARGV[5]), math.floor(tokens / tonumber(ARGV[6])))
  if leased < 2 then
    leased = 0
  end
  tokens = tokens - leased
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return {took + leased, tostring(wait)}
"""

# Give ARGV[4] unused leased tokens back (capped at the bucket's size).
_RETURN_LUA = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local data = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(data[1]) or capacity
local ts = tonumber(data[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate + tonumber(ARGV[4]))
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return 1
"""


@dataclass(slots=True)
class _Lease:
    """Tokens this process took from a key's shared bucket and has not used yet."""

    used_at: float
    tokens: int = 0
    refill_at: int = 0
    """Fetch the next lease once `tokens` is down to this (half the last lease; 0: none)."""
    waiting: int = 0
    """Requests of the key waiting here for a token."""
    fetch: asyncio.Task[float | None] | None = None
    """The script call under way: the bucket's wait if it refused, None if Redis failed."""


class RedisRateLimiter:
    """Shared buckets under `<prefix>ratelimit:<key id>`, answered from leases while they last.

    A request takes a token from this process's lease of the key's bucket when it has one,
    without a Redis call; when the lease is down to half, one background script call takes
    the next (`max_lease` at most). A request finding none waits for the one call under way
    for the key, or makes it, for itself and every request waiting with it, plus a lease.
    A lease is at most `1/share` of what the bucket holds and at least 2 tokens, so nothing is
    leased from a bucket holding fewer than `2 * share` tokens: near its limit, or for a small
    limit, requests take their own tokens in Redis, as before. Tokens only ever come out of
    the one bucket, so the replicas together never pass more than the limit; what a lease
    costs is that its unused tokens are not available to the other replicas until given
    back, which happens once the key has been idle here for `idle_seconds` (and at shutdown).
    A refusal always comes from the bucket, with the wait until its next token (`retry-after`).

    While `health` reports Redis down, `hit` uses what is leased, then this process's own
    buckets (see the module doc); they are dropped when Redis answers again, so the next
    outage starts full.
    """

    def __init__(
        self,
        redis: Redis,
        limit: RateLimit,
        *,
        prefix: str = "patchbay:",
        clock: Callable[[], float] = time.time,
        idle_clock: Callable[[], float] = time.monotonic,
        health: StoreHealth | None = None,
        max_lease: int = 64,
        share: int = 32,
        idle_seconds: float = 1.0,
    ) -> None:
        self._redis = redis
        self._limit = limit
        self._prefix = prefix
        self._clock = clock
        self._idle_clock = idle_clock
        self._lease_script = redis.register_script(_LEASE_LUA)
        self._return_script = redis.register_script(_RETURN_LUA)
        self._local = InProcessRateLimiter(limit, clock=clock)
        self._health = health or StoreHealth("rate limit store", "limiting requests per process", logger=log)
        self._max_lease = max_lease
        self._share = share
        self._idle_seconds = idle_seconds
        self._leases: dict[str, _Lease] = {}
        self._sweeper: asyncio.Task[None] | None = None

    async def hit(self, key_id: str) -> Decision:
        lease = self._leases.get(key_id)
        if lease is None:
            lease = self._leases[key_id] = _Lease(used_at=self._idle_clock())
            self._sweep_later()
        lease.waiting += 1
        try:
            while lease.tokens == 0:
                if lease.fetch is None:
                    if not self._health.should_try():
                        return await self._local.hit(key_id)
                    self._fetch(key_id, lease)
                assert lease.fetch is not None
                wait = await asyncio.shield(lease.fetch)
                if lease.tokens == 0:
                    if wait is None:
                        return await self._local.hit(key_id)
                    if wait > 0:
                        return Decision(False, wait)
        finally:
            lease.waiting -= 1
        lease.tokens -= 1
        lease.used_at = self._idle_clock()
        # Fetch ahead only while leasing: a bucket too low to lease is asked per request.
        if lease.tokens <= lease.refill_at > 0 and lease.fetch is None and self._health.should_try():
            self._fetch(key_id, lease)
        return ALLOWED

    def _fetch(self, key_id: str, lease: _Lease) -> None:
        lease.fetch = asyncio.create_task(self._take(key_id, lease), name="rate limit lease")

    async def _take(self, key_id: str, lease: _Lease) -> float | None:
        """One script call: a token for each request waiting, and a lease. The bucket's wait
        when it had too few (0.0 otherwise); None when Redis failed."""
        need = lease.waiting
        try:
            took, wait = await self._lease_script(
                keys=[self._key(key_id)],
                args=[
                    self._limit.capacity,
                    self._limit.rate,
                    repr(self._clock()),
                    need,
                    self._max_lease,
                    self._share,
                ],
            )
        except STORE_ERRORS as exc:
            self._health.failed(exc)
            return None
        else:
            if self._health.succeeded():
                await self._local.aclose()
            took = int(took)
            lease.tokens += took
            lease.refill_at = max(0, took - need) // 2
            return float(wait)
        finally:
            lease.fetch = None

    async def give_back_idle(self, *, everything: bool = False) -> int:
        """Return to Redis the leases of keys idle here for `idle_seconds` (all with
        `everything`); the number of tokens given back. The sweeper calls it while leases exist."""
        now = self._idle_clock()
        returned = 0
        for key_id, lease in list(self._leases.items()):
            if (
                lease.fetch is not None
                or lease.waiting
                or not (everything or now - lease.used_at >= self._idle_seconds)
            ):
                continue
            del self._leases[key_id]
            if lease.tokens:
                tokens, lease.tokens = lease.tokens, 0
                try:
                    await self._return_script(
                        keys=[self._key(key_id)],
                        args=[self._limit.capacity, self._limit.rate, repr(self._clock()), tokens],
                    )
                except STORE_ERRORS as exc:  # lost: the bucket refills on its own
                    self._health.failed(exc)
                else:
                    returned += tokens
        return returned

    def _sweep_later(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep(), name="rate limit lease sweeper")

    async def _sweep(self) -> None:
        while self._leases:
            await asyncio.sleep(self._idle_seconds)
            try:
                await self.give_back_idle()
            except Exception:
                log.exception("giving rate limit leases back failed")

    def _key(self, key_id: str) -> str:
        return f"{self._prefix}ratelimit:{key_id}"

    async def aclose(self) -> None:
        """Give every lease back (best effort), then close the Redis client."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for lease in self._leases.values():
            if lease.fetch is not None:
                lease.fetch.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.give_back_idle(everything=True), 5)
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
