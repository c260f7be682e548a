"""Where failed-authentication counts live: in the process, or in Redis shared by every replica.

Both stores run the steps of `auth_throttle_policy` on an address key (`address_key`), with the
time from the caller's clock so tests can drive it. The in-process store holds at most
`max_addresses` states and forgets the least recently failed first (and, when next asked about,
a state that says nothing any more). The Redis store keeps each
address as a hash under `<prefix>authfail:<address>` and runs the count-and-lock step as one
Lua script, so a failure on one replica counts on all of them and a lockout is seen everywhere.

The Redis store remembers the lockouts it has learnt (a lockout never ends early), so an
address that keeps failing while locked costs no Redis round-trip. When Redis cannot be
reached it falls back to counting in the process, exactly as the rate limiter does
(`server/v1/ratelimit.py`): one warning per outage, a retry at most once a second, and the
shared state takes over again once Redis answers.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis

from routing.redis_health import STORE_ERRORS, StoreHealth, redis_client
from server.auth_throttle_policy import (
    EMPTY,
    FailureState,
    Outcome,
    ThrottlePolicy,
    expired,
    lock_remaining,
    record_failure,
)

log = logging.getLogger("patchbay.auth")

MAX_ADDRESSES = 100_000
MAX_REMEMBERED_LOCKS = 10_000


class FailureStore(Protocol):
    async def locked(self, key: str) -> float | None:
        """Seconds the address stays locked; None when it is not."""
        ...

    async def failed(self, key: str) -> Outcome:
        """Count one failure (or, when locked, only say for how long)."""
        ...

    async def aclose(self) -> None: ...


class NoFailureStore:
    """Throttling turned off (PATCHBAY_AUTH_FAILURE_LIMIT=0): nothing is counted or locked."""

    async def locked(self, key: str) -> float | None:
        return None

    async def failed(self, key: str) -> Outcome:
        return Outcome(0)

    async def aclose(self) -> None:
        return None


class InProcessFailureStore:
    """States in an ordered dict; each step runs without awaiting, so it is atomic on the loop."""

    def __init__(
        self,
        policy: ThrottlePolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._max = max_addresses
        self._states: OrderedDict[str, FailureState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    async def locked(self, key: str) -> float | None:
        now = self._clock()
        state = self._states.get(key, EMPTY)
        if state is not EMPTY and expired(self._policy, state, now):
            del self._states[key]
        return lock_remaining(state, now)

    async def failed(self, key: str) -> Outcome:
        now = self._clock()
        state, outcome = record_failure(self._policy, self._states.get(key, EMPTY), now)
        self._states[key] = state
        self._states.move_to_end(key)
        while len(self._states) > self._max:
            self._states.popitem(last=False)
        return outcome

    async def aclose(self) -> None:
        self._states.clear()


# Returns {count, retry_after}: retry_after is '-1' when the address is not locked after this
# failure. The same steps as `record_failure`; the hash expires once it says nothing more.
_FAILURE_LUA = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local lockout = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local d = redis.call('HMGET', KEYS[1], 'n', 'w', 'l')
local n = tonumber(d[1]) or 0
local w = tonumber(d[2]) or now
local l = tonumber(d[3]) or 0
if l > now then
  return {0, tostring(l - now)}
end
if n == 0 or now - w >= window then
  n = 0
  w = now
end
n = n + 1
if n >= limit then
  redis.call('HSET', KEYS[1], 'n', 0, 'w', tostring(now), 'l', tostring(now + lockout))
  redis.call('EXPIRE', KEYS[1], math.ceil(lockout) + 1)
  return {n, tostring(lockout)}
end
redis.call('HSET', KEYS[1], 'n', n, 'w', tostring(w), 'l', 0)
redis.call('EXPIRE', KEYS[1], math.ceil(window) + 1)
return {n, '-1'}
"""


class RedisFailureStore:
    """Shared states under `<prefix>authfail:<address>`, one script call per counted failure."""

    def __init__(
        self,
        redis: Redis,
        policy: ThrottlePolicy,
        *,
        prefix: str = "patchbay:",
        clock: Callable[[], float] = time.time,
        health: StoreHealth | None = None,
    ) -> None:
        self._redis = redis
        self._policy = policy
        self._prefix = prefix
        self._clock = clock
        self._script = redis.register_script(_FAILURE_LUA)
        self._local = InProcessFailureStore(policy, clock=clock)
        self._locks: dict[str, float] = {}
        self._health = health or StoreHealth(
            "auth failure store", "counting failed authentication per process", logger=log
        )

    def _key(self, key: str) -> str:
        return f"{self._prefix}authfail:{key}"

    def _remembered(self, key: str, now: float) -> float | None:
        until = self._locks.get(key)
        if until is None:
            return None
        if until > now:
            return until - now
        del self._locks[key]
        return None

    def _remember(self, key: str, until: float) -> None:
        if len(self._locks) >= MAX_REMEMBERED_LOCKS:
            now = self._clock()
            self._locks = {k: u for k, u in self._locks.items() if u > now}
            if len(self._locks) >= MAX_REMEMBERED_LOCKS:
                self._locks.clear()
        self._locks[key] = until

    async def locked(self, key: str) -> float | None:
        now = self._clock()
        left = self._remembered(key, now)
        if left is not None:
            return left
        if self._health.should_try():
            try:
                until = await self._redis.hget(self._key(key), "l")
            except STORE_ERRORS as exc:
                self._health.failed(exc)
            else:
                if self._health.succeeded():
                    await self._local.aclose()
                left = float(until) - now if until is not None else 0.0
                if left <= 0:
                    return None
                self._remember(key, now + left)
                return left
        return await self._local.locked(key)

    async def failed(self, key: str) -> Outcome:
        now = self._clock()
        left = self._remembered(key, now)
        if left is not None:
            return Outcome(0, left)
        if self._health.should_try():
            policy = self._policy
            try:
                count, retry_after = await self._script(
                    keys=[self._key(key)],
                    args=[policy.limit, repr(policy.window), repr(policy.lockout), repr(now)],
                )
            except STORE_ERRORS as exc:
                self._health.failed(exc)
            else:
                if self._health.succeeded():
                    await self._local.aclose()
                left = float(retry_after)
                if left < 0:
                    return Outcome(int(count))
                self._remember(key, now + left)
                return Outcome(int(count), left)
        return await self._local.failed(key)

    async def aclose(self) -> None:
        await self._redis.aclose()


def make_failure_store(
    policy: ThrottlePolicy | None, redis_url: str | None, *, prefix: str = "patchbay:"
) -> FailureStore:
    """Redis when the deployment configures it (PATCHBAY_REDIS_URL), else in process; none when off."""
    if policy is None:
        return NoFailureStore()
    if redis_url:
        return RedisFailureStore(redis_client(redis_url), policy, prefix=prefix)
    return InProcessFailureStore(policy)
