"""Where auth-profile state lives: in process, or in Redis so every replica sees it.

The store only persists; the policy is `routing.cooldown`. Updates are read-modify-write of
one profile's state through that pure policy, made atomic per profile (a lock in process,
WATCH/MULTI in Redis). Windows are absolute timestamps from the caller's clock, not Redis
TTLs, so tests control time and replicas agree on expiry.

With Redis, each process keeps a copy of the states it read and plans from it for up to
`copy_seconds` (`PATCHBAY_COOLDOWN_COPY_SECONDS`, default 1 s) while it hears the other
replicas' cooldown notices (`routing.cooldown_copies`), and writes the successes that only move
`last_used` behind the request (`routing.cooldown_touches`); see `RedisCooldownStore`.

A Redis outage fails no request: the Redis store falls back to in-process state (what a
deployment without Redis keeps) and goes back to Redis once it answers (see
`RedisCooldownStore`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TypeVar

import orjson
from redis.asyncio import Redis
from redis.exceptions import WatchError

from foundation.metrics import observe_cooldown_notice
from routing.cooldown import (
    DEFAULT_SCHEDULE,
    FRESH,
    Failure,
    ProfileState,
    Schedule,
    apply_failure,
    apply_success,
    state_to_dict,
)
from routing.cooldown_carry import carry_over
from routing.cooldown_copies import UNREAD, Copies, decode
from routing.cooldown_memory import CooldownStore, InProcessCooldownStore, Update
from routing.cooldown_touches import QueuedTouches, Touch
from routing.redis_health import STORE_ERRORS, StoreHealth, redis_client

log = logging.getLogger("patchbay.routing")

__all__ = [
    "CooldownStore",
    "InProcessCooldownStore",
    "RedisCooldownStore",
    "Update",
    "make_cooldown_store",
]

T = TypeVar("T")


class _FailedMeanwhile(Exception):
    """Redis failed while this update waited for its profile's lock: use the fallback at once."""


class RedisCooldownStore:
    """Shared state in Redis: one JSON value per profile under `<prefix>cooldown:<org>:<profile>`.

    Reads of all candidate profiles are a single MGET, and only of the profiles this process
    holds no fresh copy of: while it hears cooldown notices (`listening`, which the registry's
    subscriber reports), a state read from Redis is planned from for `copy_seconds` without
    reading it again (`routing.cooldown_copies`). Every write that changes what routing decides (a failure, a disable, a
    reset, an imported state, a clear) updates this process's copy at once and publishes a
    notice on `notice_channel` in the same transaction, before the caller answers its client;
    a replica hearing it (`notice`) drops its copy of that profile and reads it afresh on its
    next request. So another replica skips a profile cooled down here from the moment the
    notice reaches it (well under a millisecond on a LAN); a request it planned before then
    may still try the profile once, as when two replicas plan at the same moment. Pub/sub is
    at most once: a copy is never older than `copy_seconds`, and while the subscription is
    down (or before it is confirmed) no copy is used at all, every plan reads Redis.
    A read that overlapped a notice or a write of this process is used for its own plan only.

    Writes to one profile are serialised
    within this process by a lock, so WATCH conflicts only arise between replicas and a
    burst of concurrent failures does not turn into a retry storm.

    A success that only moves `last_used` (the profile had no failure, window or disable to
    reset: nearly every request) is written behind the request (`routing.cooldown_touches`),
    so the answer does not wait for Redis: each profile's latest success goes out at most once per `copy_seconds` (other
    replicas see `last_used` no sooner anyway), those queued meanwhile together, each a
    compare-and-set of the value the request's own `get_many` read, and one that finds the
    value changed meanwhile (another request or replica wrote the profile) is dropped, never
    written over a newer state. This process reads its own queued successes back (`get_many`).
    A success that resets a failure is written before the answer: the same compare-and-set,
    falling back to WATCH/MULTI. The write is not skipped for healthy profiles: `last_used`
    drives round-robin. Keys carry a housekeeping expiry
    (`retention`, default 7 days) so profiles that are never used again do not accumulate;
    it is far longer than any window and plays no part in the policy.

    When Redis cannot be reached (`health`), every method uses an in-process store instead and
    none raises for it: one warning per outage, and Redis is tried again at most once per
    back-off. When it answers, the in-process state is dropped (a profile that failed during the
    outage is simply tried again), and the profiles cleared meanwhile are deleted in Redis first,
    so a replaced key is not held back by its predecessor's state.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "patchbay:",
        schedule: Schedule = DEFAULT_SCHEDULE,
        retention_seconds: int = 7 * 86_400,
        max_update_attempts: int = 20,
        health: StoreHealth | None = None,
        copy_seconds: float = 1.0,
        copy_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`copy_seconds`: how long a state read from Redis is planned from while notices are
        heard (0: every plan reads Redis)."""
        if copy_seconds < 0:
            raise ValueError("copy_seconds must be >= 0")
        self._redis = redis
        self._prefix = prefix
        self._schedule = schedule
        self._retention = retention_seconds
        self._max_attempts = max_update_attempts
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        # Each profile's value as last read or written here: the copy plans use, and what a
        # compare-and-set of a success expects.
        self._copies = Copies(copy_seconds, copy_clock)
        self.notice_channel = f"{prefix}cooldowns"
        self._instance = secrets.token_hex(6)
        self._cas = redis.register_script(_CAS_SCRIPT)
        self._health = health or StoreHealth(
            "cooldown store", "keeping auth-profile cooldowns in this process", logger=log
        )
        self._local = InProcessCooldownStore(schedule)
        # Keys cleared while Redis was down, deleted there before it is used again.
        self._pending_clears: set[str] = set()
        # Successes that only move `last_used`, written behind.
        self._touches = QueuedTouches(self._write_touch, copy_seconds)

    def key(self, org_id: str, profile_id: str) -> str:
        return f"{self._prefix}cooldown:{org_id}:{profile_id}"

    async def _shared_or_local(
        self, shared: Callable[[], Awaitable[T]], local: Callable[[], Awaitable[T]]
    ) -> T:
        if await self._redis_usable():
            try:
                result = await shared()
            except _FailedMeanwhile:
                pass
            except STORE_ERRORS as exc:
                self._health.failed(exc)
            else:
                if self._health.succeeded():
                    self._local = InProcessCooldownStore(self._schedule)
                    self._copies.forget_all()  # notices were missed meanwhile
                return result
        return await local()

    async def _redis_usable(self) -> bool:
        """Whether this call goes to Redis; the first one after an outage replays its clears."""
        if not self._health.should_try():
            return False
        if self._health.down and self._pending_clears:
            keys = list(self._pending_clears)
            try:
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.delete(*keys)
                    for key in keys:
                        pipe.publish(self.notice_channel, self._notice(key))
                    await pipe.execute()
            except STORE_ERRORS as exc:
                self._health.failed(exc)
                return False
            self._pending_clears.difference_update(keys)
        return True

    async def get_many(self, org_id: str, profile_ids: Sequence[str]) -> dict[str, ProfileState]:
        if not profile_ids:
            return {}
        return await self._shared_or_local(
            lambda: self._get_many(org_id, profile_ids),
            lambda: self._local.get_many(org_id, profile_ids),
        )

    async def _get_many(self, org_id: str, profile_ids: Sequence[str]) -> dict[str, ProfileState]:
        keys = [self.key(org_id, pid) for pid in profile_ids]
        states, missing = self._copies.fresh(keys)
        if missing:
            generation = self._copies.generation
            raw = await self._redis.mget(missing)
            states.update(self._copies.read(missing, raw, generation))
        found: dict[str, ProfileState] = {}
        for key, pid in zip(keys, profile_ids, strict=True):
            state = states[key]
            touch = self._touches.get(key)
            if touch is not None:  # this process's success, not written yet: it only moves `last_used`
                state = (
                    apply_success(FRESH, touch.model, touch.now)
                    if state is None
                    else replace(state, last_used=touch.now)
                )
            if state is not None:
                found[pid] = state
        return found

    @property
    def listening(self) -> bool:
        """Whether this process hears the cooldown notices: only then are copies planned from."""
        return self._copies.listening

    @listening.setter
    def listening(self, value: bool) -> None:
        self._copies.listening = value

    def notice(self, data: bytes | str) -> None:
        """A cooldown notice from the channel: another replica wrote this profile."""
        text = data.decode() if isinstance(data, bytes) else data
        sender, _, key = text.partition(" ")
        if sender != self._instance and key:
            self._copies.forget(key)
            # Another replica wrote the profile after this process's success was queued: the
            # success is older than that write (a cooldown it recorded must not be undone).
            self._touches.drop(key)
            observe_cooldown_notice()

    def _notice(self, key: str) -> str:
        return f"{self._instance} {key}"

    async def _update(self, org_id: str, profile_id: str, update: Update) -> ProfileState:
        failures = self._health.failures
        key = self.key(org_id, profile_id)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            if self._health.failures != failures:
                # The holder before us timed out on Redis: queueing behind it must not cost
                # each waiting request another timeout.
                raise _FailedMeanwhile
            return await self._watched_update(key, profile_id, update)

    async def _watched_update(self, key: str, profile_id: str, update: Update) -> ProfileState:
        for _ in range(self._max_attempts):
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    current = await pipe.get(key)
                    state = update(FRESH if current is None else decode(current))
                    raw = orjson.dumps(state_to_dict(state))
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, raw, ex=self._retention)
                    # Published with the write, so it is out before the caller answers its client.
                    pipe.publish(self.notice_channel, self._notice(key))
                    await pipe.execute()
                    self._copies.wrote(key, raw, state)
                    return state
                except WatchError:
                    # Another replica wrote this profile between our read and write: recompute.
                    await asyncio.sleep(0)
        raise RuntimeError(f"cooldown update for {profile_id} kept conflicting")

    async def record_failure(
        self, org_id: str, profile_id: str, failure: Failure, now: float
    ) -> ProfileState:
        self._touches.drop(self.key(org_id, profile_id))  # the failure came after it
        return await self._shared_or_local(
            lambda: self._update(
                org_id, profile_id, lambda s: apply_failure(s, failure, now, self._schedule)
            ),
            lambda: self._local.record_failure(org_id, profile_id, failure, now),
        )

    async def record_success(self, org_id: str, profile_id: str, model: str, now: float) -> ProfileState:
        key = self.key(org_id, profile_id)
        seen = self._copies.get(key)
        if seen is not None:
            before = seen.state or FRESH
            after = apply_success(before, model, now)
            if after == replace(before, last_used=now):
                self._touches.queue(key, Touch(org_id, profile_id, model, now))
                return after
        return await self._shared_or_local(
            lambda: self._record_success(org_id, profile_id, model, now),
            lambda: self._local.record_success(org_id, profile_id, model, now),
        )

    async def _write_touch(self, key: str, touch: Touch) -> None:
        org_id, profile_id, model, now = touch
        await self._shared_or_local(
            lambda: self._touch(key, model, now),
            lambda: self._local.record_success(org_id, profile_id, model, now),
        )

    async def _touch(self, key: str, model: str, now: float) -> None:
        """Move `last_used` by compare-and-set of the value last read; a changed value wins.
        No notice: other replicas see `last_used` move when their copies expire."""
        seen = self._copies.get(key)
        if seen is None:
            return
        state = apply_success(seen.state or FRESH, model, now)
        raw = orjson.dumps(state_to_dict(state))
        written = await self._cas(keys=[key], args=[seen.raw, raw, self._retention, "", ""])
        if self._copies.get(key) is seen:  # nothing newer came meanwhile
            if written == 1:
                self._copies.put(key, seen._replace(raw=raw, state=state))
            else:  # written elsewhere: read it afresh before planning from it again
                self._copies.put(key, seen._replace(read_at=UNREAD))

    async def flush(self) -> None:
        """Write the successes held behind now, and wait until they are in Redis (tests, shutdown)."""
        await self._touches.flush()

    async def _record_success(self, org_id: str, profile_id: str, model: str, now: float) -> ProfileState:
        key = self.key(org_id, profile_id)
        seen = self._copies.pop(key)
        if seen is not None:
            state = apply_success(seen.state or FRESH, model, now)
            raw = orjson.dumps(state_to_dict(state))
            written = await self._cas(
                keys=[key],
                args=[seen.raw, raw, self._retention, self.notice_channel, self._notice(key)],
            )
            if written == 1:
                self._copies.wrote(key, raw, state)
                return state
        return await self._update(org_id, profile_id, lambda s: apply_success(s, model, now))

    async def carry_over(self, org_id: str, profile_id: str, imported: ProfileState) -> ProfileState:
        return await self._shared_or_local(
            lambda: self._update(org_id, profile_id, lambda s: carry_over(s, imported)),
            lambda: self._local.carry_over(org_id, profile_id, imported),
        )

    async def clear(self, org_id: str, profile_id: str) -> None:
        key = self.key(org_id, profile_id)
        self._copies.pop(key)
        self._touches.drop(key)
        await self._local.clear(org_id, profile_id)

        async def pending() -> None:
            self._pending_clears.add(key)

        async def shared() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.publish(self.notice_channel, self._notice(key))
                await pipe.execute()
            self._copies.forget(key)

        await self._shared_or_local(shared, pending)

    async def aclose(self) -> None:
        """Write what is behind, then close the Redis client (the store owns it when
        `make_cooldown_store` built it)."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), 5)
        await self._redis.aclose()


# Set KEYS[1] to ARGV[2] (expiring in ARGV[3] s) only if it still holds ARGV[1] ("" = absent),
# and then publish ARGV[5] on channel ARGV[4] unless that is "".
_CAS_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if (current == false and ARGV[1] == '') or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  if ARGV[4] ~= '' then
    redis.call('PUBLISH', ARGV[4], ARGV[5])
  end
  return 1
end
return 0
"""


def make_cooldown_store(
    redis_url: str | None, *, prefix: str = "patchbay:", copy_seconds: float = 1.0
) -> CooldownStore:
    """Redis when the deployment configures it (PATCHBAY_REDIS_URL), so replicas share state; else in process."""
    if redis_url:
        return RedisCooldownStore(redis_client(redis_url), prefix=prefix, copy_seconds=copy_seconds)
    return InProcessCooldownStore()
