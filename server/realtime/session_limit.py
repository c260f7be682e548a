"""Live realtime sessions per API key: in process, or in Redis so the limit holds across
worker processes and replicas.

`acquire` admits a session or raises `SessionLimitError`; `release` gives its slot back and
never raises. `total` is the number of sessions this process has admitted and not released
(the admin metrics' `live_sessions`), whichever store counts them.

In Redis each key id has one sorted set, `<prefix>voice:sessions:<key id>`: member = session
id, score = the time its lease runs out. A slot whose process crashed is never released, so
every slot is a lease: the owning process renews the leases of all its live sessions in one
pipelined call every `Lease.renew_interval` seconds, and an acquire first drops members whose
lease has run out. A crashed process's slots therefore come back within `Lease.seconds`.
Times come from the caller's clock (wall time, shared by replicas to within seconds), passed
into the script, so tests drive expiry without sleeping.

A reconnecting client may name the session it replaces (`replaces`): its own earlier session,
whose connection it gave up on (a network drop the server has not noticed yet). Only a session
of the same key can be named. Its slot goes to the new session, so a key at its limit does not
refuse the reconnection, and the session is ended (its `close` callback) in whichever process
holds it: this one at once, another through a notice on `<prefix>voice:replaced`, published by
the same script that dropped the slot and heard on the registry's subscription (`notice`).

When Redis cannot be reached, the limiter fails open to the per-process limit: a session is
admitted if this process's own live sessions for the key are under the limit (what a
deployment without Redis enforces), one warning is logged per outage, and the renewal loop
writes this process's sessions back into Redis once it answers again. A voice call is never
refused because the limiter's store hiccupped; the shared limit is briefly the per-process
one times the number of processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from routing.redis_health import STORE_ERRORS, StoreHealth, redis_client
from server.realtime.session_slots import Close, LiveSessions

log = logging.getLogger("patchbay.realtime")


class SessionLimitError(Exception):
    """The key already has its limit of live sessions; the message is safe to show the client."""


def _refusal(live: int, limit: int) -> SessionLimitError:
    return SessionLimitError(f"this key already has {live} live realtime sessions (limit {limit})")


@dataclass(frozen=True, slots=True)
class Lease:
    """How long a slot outlives its last renewal, and how often a process renews its own."""

    seconds: float = 30.0
    renew_every: float | None = None
    """Default a third of `seconds`, so two renewals in a row may fail before a live slot lapses."""

    def __post_init__(self) -> None:
        if self.seconds <= 0 or (self.renew_every is not None and not 0 < self.renew_every < self.seconds):
            raise ValueError("a lease needs seconds > 0 and 0 < renew_every < seconds")

    @property
    def renew_interval(self) -> float:
        return self.renew_every if self.renew_every is not None else self.seconds / 3


class SessionLimiter(Protocol):
    @property
    def limit(self) -> int: ...

    @property
    def total(self) -> int:
        """Sessions this process admitted and has not released."""
        ...

    async def acquire(
        self, key_id: str, session_id: str, *, replaces: str | None = None, close: Close | None = None
    ) -> None:
        """Count `session_id` against the key, or raise `SessionLimitError` at the limit.
        `replaces`: a session of the key to end first (its slot is freed even if this is refused);
        `close`: how this session is ended if a later one replaces it."""
        ...

    async def release(self, key_id: str, session_id: str) -> None:
        """Give the session's slot back; unknown sessions are ignored. Never raises."""
        ...

    async def aclose(self) -> None:
        """Stop background work and release connections; the limiter is not used afterwards."""
        ...


class InProcessSessionLimiter:
    """The limit counted in this process only; updates do not await, so they are atomic."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._live = LiveSessions()

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def total(self) -> int:
        return self._live.total

    async def acquire(
        self, key_id: str, session_id: str, *, replaces: str | None = None, close: Close | None = None
    ) -> None:
        if replaces is not None:
            self._live.replace(key_id, replaces)
        live = self._live.count(key_id)
        if live >= self._limit:
            raise _refusal(live, self._limit)
        self._live.add(key_id, session_id, close)

    async def release(self, key_id: str, session_id: str) -> None:
        self._live.discard(key_id, session_id)

    async def aclose(self) -> None:
        self._live.by_key.clear()


# KEYS[1] the key's sorted set. ARGV: session id, limit, now, lease expiry, key TTL in ms, the
# session replaced ('' for none), the replacement channel, its notice.
# Returns {1, live} when admitted, {0, live} when refused (live = sessions counted).
_ACQUIRE_LUA = """
if ARGV[6] ~= '' and redis.call('ZREM', KEYS[1], ARGV[6]) == 1 then
  redis.call('PUBLISH', ARGV[7], ARGV[8])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local live = redis.call('ZCARD', KEYS[1])
if live >= tonumber(ARGV[2]) then
  return {0, live}
end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1, live + 1}
"""


class RedisSessionLimiter:
    """The limit shared by every process using the same Redis and prefix (see the module doc).

    Renewal is one task per limiter, started by the first `acquire` and stopped by `aclose`;
    there is no per-session task and no per-frame work. Renewals and releases take turns on a
    lock so a renewal in flight cannot write back a session that a release or a replacement
    just removed.
    """

    def __init__(
        self,
        redis: Redis,
        limit: int,
        *,
        prefix: str = "patchbay:",
        lease: Lease = Lease(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._limit = limit
        self._prefix = prefix
        self._lease = lease
        self._clock = clock
        self._live = LiveSessions()
        self._lock = asyncio.Lock()
        self._renewer: asyncio.Task[None] | None = None
        self._forgetting: set[asyncio.Task[None]] = set()
        self._health = StoreHealth(
            "session limit store", "limiting realtime sessions per process", logger=log, clock=time.monotonic
        )
        self._script = redis.register_script(_ACQUIRE_LUA)
        self.notice_channel = f"{prefix}voice:replaced"
        """Where a replacement is announced to the process holding the session (`notice`)."""
        self.listening = False
        """Set by the registry while its subscription hears `notice_channel`."""
        # Housekeeping only: an idle key's set disappears once every lease in it has run out.
        self._key_ttl_ms = math.ceil(lease.seconds * 1000) + 1000

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def total(self) -> int:
        return self._live.total

    def key(self, key_id: str) -> str:
        return f"{self._prefix}voice:sessions:{key_id}"

    async def acquire(
        self, key_id: str, session_id: str, *, replaces: str | None = None, close: Close | None = None
    ) -> None:
        # Held here: ended now. The script drops its slot, and `_forget_soon` drops it again
        # after a renewal already in flight (its pipeline built before this) has landed.
        ended_here = replaces if replaces is not None and self._live.replace(key_id, replaces) else None
        if self._renewer is None:
            self._renewer = asyncio.get_running_loop().create_task(self._renew_loop())
        now = self._clock()
        # During an outage only the back-off's probe asks Redis; other handshakes do not each
        # wait out a timeout.
        admitted, live = self._live.count(key_id) < self._limit, self._live.count(key_id)
        if self._health.should_try():
            try:
                admitted, live = await self._script(
                    keys=[self.key(key_id)],
                    args=[
                        session_id,
                        self._limit,
                        repr(now),
                        repr(now + self._lease.seconds),
                        self._key_ttl_ms,
                        replaces or "",
                        self.notice_channel,
                        f"{key_id}:{replaces}",
                    ],
                )
            except STORE_ERRORS as exc:
                self._health.failed(exc)
            else:
                self._health.succeeded()
        if ended_here is not None:
            self._forget_soon(key_id, ended_here)
        if not int(admitted):
            raise _refusal(int(live), self._limit)
        self._live.add(key_id, session_id, close)

    def notice(self, data: bytes | str) -> None:
        """Another process replaced one of its key's sessions (`<key id>:<session id>`): if the
        session is live here, it ends, and its slot is not renewed.

        The slot is also removed again: a renewal sent between the other process's script and
        this notice wrote it back, and it would count against the key until its lease ran out.
        """
        text = data.decode() if isinstance(data, bytes) else data
        key_id, _, session_id = text.partition(":")
        if self._live.replace(key_id, session_id):
            self._forget_soon(key_id, session_id)

    def _forget_soon(self, key_id: str, session_id: str) -> None:
        """Remove a replaced session's slot in the background, after any renewal in flight."""
        task = asyncio.get_running_loop().create_task(self._forget(key_id, session_id))
        self._forgetting.add(task)
        task.add_done_callback(self._forgetting.discard)

    async def settled(self) -> None:
        """Returns once the slots of replaced sessions are removed from Redis."""
        if self._forgetting:
            await asyncio.gather(*self._forgetting, return_exceptions=True)

    async def release(self, key_id: str, session_id: str) -> None:
        if self._live.discard(key_id, session_id):
            await self._forget(key_id, session_id)

    async def _forget(self, key_id: str, session_id: str) -> None:
        if self._health.down:
            return  # the lease runs out on its own within `Lease.seconds`
        async with self._lock:
            try:
                await self._redis.zrem(self.key(key_id), session_id)
            except STORE_ERRORS as exc:
                self._health.failed(exc)

    async def renew(self) -> None:
        """Extend every live session's lease in one pipelined round trip (the loop calls this).

        A plain ZADD, not "update only": a session admitted while Redis was unreachable, or
        whose lease lapsed during a long stall, is written back and counted again.
        """
        async with self._lock:
            if not self._live.by_key:
                return
            if not self._health.should_try():
                return
            expiry = self._clock() + self._lease.seconds
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for key_id, sessions in self._live.by_key.items():
                        pipe.zadd(self.key(key_id), dict.fromkeys(sessions, expiry))
                        pipe.pexpire(self.key(key_id), self._key_ttl_ms)
                    await pipe.execute()
            except STORE_ERRORS as exc:
                self._health.failed(exc)
            else:
                self._health.succeeded()

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self._lease.renew_interval)
            try:
                await self.renew()
            except Exception:
                log.exception("realtime session lease renewal failed")

    async def aclose(self) -> None:
        """Stop renewing and hand this process's remaining slots back (best effort)."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        await self.settled()
        live, self._live.by_key = self._live.by_key, {}
        if live:
            with contextlib.suppress(*STORE_ERRORS):
                async with self._redis.pipeline(transaction=False) as pipe:
                    for key_id, sessions in live.items():
                        pipe.zrem(self.key(key_id), *sessions)
                    await pipe.execute()
        await self._redis.aclose()


def make_session_limiter(
    limit: int,
    redis_url: str | None,
    *,
    prefix: str = "patchbay:",
    lease: Lease = Lease(),
    timeout: float = 1.0,
) -> SessionLimiter:
    """Redis when the deployment configures it (PATCHBAY_REDIS_URL), else in process.

    The Redis client gives up within about `2 * timeout` (`routing.redis_health`), and during
    an outage only one handshake per back-off second pays that to probe Redis.
    """
    if redis_url:
        return RedisSessionLimiter(
            redis_client(redis_url, timeout=timeout), limit, prefix=prefix, lease=lease
        )
    return InProcessSessionLimiter(limit)
