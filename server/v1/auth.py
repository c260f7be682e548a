"""Server API keys on the hot path: one database read per key, then memory.

The cache maps the SHA-256 of a presented key to its `Principal` (the plaintext is never kept).
A key is looked up in the database the first time a process sees it; after that it is served
from memory until something says it may have changed:
- an org's configuration changed (`drop_org`, wired to the registry's change listener), which
  also covers agent deletion;
- the background poll (`poll`, run by the registry every couple of seconds on its session)
  finds that a cached key was revoked or deleted, by whichever process.
A key read for the first time brings its org with it: one statement reads the key and its
org's rows, which the registry builds the org's entry from (`Registry.preload_rows`), so an
org's first request makes one statement, not one for the key and another for the org.
Unknown keys are remembered briefly (bounded) so a client retrying a bad key cannot turn
every request into a database read.

At most `size` keys are held (`PATCHBAY_API_KEY_CACHE_SIZE`): the least recently used is
dropped to make room and read again on its next use. Concurrent first uses of one key share one
read, and first uses of different keys arriving together share one query
(`foundation.batched_reads`); a read in flight never holds up keys arriving after it. Hits, misses and evictions are
counted under `patchbay_cache_*_total{cache="api_key"}` (docs/metrics.md).

The cached `Principal` carries the key's scope (model list, expiry), so `check` refuses an
expired key without a read: expiry needs no poll. Each accepted use is noted in memory for
`LastUsedWriter`, which writes `last_used_at` behind the requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from foundation.batched_reads import BatchedReads
from foundation.db import connections_of, read_reconnecting, utcnow
from foundation.lru import LruCache
from routing.org_rows import OrgRowsReader
from server.accounts import (
    API_KEY_PREFIX,
    Principal,
    authenticate_api_keys_with_orgs,
    hash_api_key,
)
from server.tables import ApiKey
from server.v1.last_used import LastUsedWriter

_NEGATIVE_TTL = 5.0
_MAX_NEGATIVE = 10_000
_POLL_BATCH = 500
_LIVE_KEYS = select(ApiKey.id).where(
    ApiKey.id.in_(bindparam("ids", expanding=True)), ApiKey.revoked_at.is_(None)
)
"""The revocation poll's statement, built once: an `in_(list)` built on every poll left its bind
parameters in reference cycles."""
DEFAULT_CACHE_SIZE = 50_000
"""API keys a process holds at most (`PATCHBAY_API_KEY_CACHE_SIZE`)."""


def bearer_token(authorization: bytes | None, x_api_key: bytes | None = None) -> str | None:
    """The key from `Authorization: Bearer ...` (OpenAI SDKs) or `x-api-key` (Anthropic SDKs)."""
    if authorization:
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    if x_api_key:
        return x_api_key.decode("latin-1").strip() or None
    return None


@dataclass(frozen=True, slots=True)
class Expired:
    """A live key past its expiry: refused like an unknown key, but saying so."""

    principal: Principal

    @property
    def expires_at(self) -> datetime:
        assert self.principal.expires_at is not None
        return self.principal.expires_at


class OrgLoader(Protocol):
    """Loads orgs from rows read with their keys (`routing.registry.Registry`)."""

    @property
    def changes(self) -> int: ...

    async def preload_rows(
        self, conn: AsyncConnection, read: OrgRowsReader, org_ids: Iterable[str], since: int
    ) -> None: ...


class ApiKeyCache:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
        last_used: LastUsedWriter | None = None,
        size: int = DEFAULT_CACHE_SIZE,
        orgs: OrgLoader | None = None,
    ) -> None:
        """`orgs`: given the rows of the orgs of the keys each read finds, read with them."""
        self._connect = connections_of(sessions)
        self._orgs = orgs
        self._clock = clock
        self._now = now
        """The wall clock keys expire by (`clock` times the negative cache)."""
        self.last_used = last_used or LastUsedWriter(sessions, now=now)
        self._by_hash: LruCache[str, Principal] = LruCache("api_key", size, self._forget)
        self._by_org: dict[str, set[str]] = {}
        """Org id -> digests held: dropping an org's keys reads only its own."""
        self._loading: dict[str, asyncio.Task[Principal | None]] = {}
        self._reads: BatchedReads[str, Principal] = BatchedReads(self._read_many)
        self._unknown: dict[str, float] = {}
        self.lookups = 0
        """Database reads made so far, one per batch of keys (tests assert the hot path makes none)."""

    async def authenticate(self, presented: str) -> Principal | None:
        """The principal of a usable key; None for an unknown, revoked or expired one."""
        checked = await self.check(presented)
        return checked if isinstance(checked, Principal) else None

    async def check(self, presented: str) -> Principal | Expired | None:
        """The principal of a usable key (its use noted), `Expired`, or None for anything else."""
        principal = await self._known(presented)
        return self.vet(principal) if principal is not None else None

    def vet(self, principal: Principal) -> Principal | Expired:
        """Refuse an expired key's principal; note the use of any other."""
        if principal.expired(self._now()):
            return Expired(principal)
        self.last_used.record(principal.key_id)
        return principal

    async def _known(self, presented: str) -> Principal | None:
        if not presented.startswith(API_KEY_PREFIX):
            return None
        digest = hash_api_key(presented)
        principal = self._by_hash.get(digest)
        if principal is not None:
            return principal
        seen = self._unknown.get(digest)
        if seen is not None and self._clock() - seen < _NEGATIVE_TTL:
            return None
        task = self._loading.get(digest)
        if task is None:
            task = asyncio.ensure_future(self._read(presented, digest))
            self._loading[digest] = task
            task.add_done_callback(lambda done: self._read_finished(digest, done))
        return await asyncio.shield(task)

    async def _read(self, presented: str, digest: str) -> Principal | None:
        """One read per key however many requests wait for it; runs as its own task so a
        caller that gives up does not cancel it for the others."""
        principal = await self._reads.read(presented)
        if principal is None:
            if len(self._unknown) >= _MAX_NEGATIVE:
                self._unknown.clear()
            self._unknown[digest] = self._clock()
            return None
        self._unknown.pop(digest, None)
        self._by_hash.put(digest, principal)
        self._by_org.setdefault(principal.org_id, set()).add(digest)
        return principal

    async def _read_many(self, presented: list[str]) -> dict[str, Principal]:
        """Keys used for the first time together: one query (`BatchedReads`)."""
        self.lookups += 1

        async def read(conn: AsyncConnection) -> dict[str, Principal]:
            since = self._orgs.changes if self._orgs is not None else 0
            found, orgs = await authenticate_api_keys_with_orgs(conn, presented)
            if found and self._orgs is not None:
                # The keys stand whatever happens to the rest of their orgs' load: the registry
                # hands an org whose load failed to a load of its own, which reports the error.
                with contextlib.suppress(Exception):
                    await self._orgs.preload_rows(conn, orgs, [p.org_id for p in found.values()], since)
            return found

        # A plain connection, no ORM session: Core statements only (foundation.db.connections_of).
        return await read_reconnecting(self._connect, read)

    def prime(self, digest: str, principal: Principal) -> bool:
        """Hold a key read ahead of its first use (`server.v1.prewarm`), unless it is held or being
        read already; counts no lookup. False when the cache is full: nothing is evicted for it."""
        if digest in self._loading or self._by_hash.peek(digest) is not None:
            return True
        if len(self._by_hash) >= self._by_hash.size:
            return False
        self._by_hash.put(digest, principal)
        self._by_org.setdefault(principal.org_id, set()).add(digest)
        return True

    def _read_finished(self, digest: str, task: asyncio.Task[Principal | None]) -> None:
        if self._loading.get(digest) is task:
            del self._loading[digest]
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have given up

    def _forget(self, digest: str, principal: Principal) -> None:
        held = self._by_org.get(principal.org_id)
        if held is not None:
            held.discard(digest)
            if not held:
                del self._by_org[principal.org_id]

    def _drop(self, digest: str) -> None:
        principal = self._by_hash.pop(digest)
        if principal is not None:
            self._forget(digest, principal)

    def drop_org(self, org_id: str) -> None:
        for digest in list(self._by_org.get(org_id, ())):
            self._drop(digest)

    def drop_key(self, key_id: str) -> None:
        for digest in [d for d in self._by_hash if (p := self._by_hash.peek(d)) and p.key_id == key_id]:
            self._drop(digest)

    async def poll(self, session: AsyncSession) -> None:
        """Forget cached keys that were revoked or deleted since they were cached."""
        ids = list({p.key_id for d in self._by_hash if (p := self._by_hash.peek(d))})
        live: set[str] = set()
        for start in range(0, len(ids), _POLL_BATCH):
            rows = await session.scalars(_LIVE_KEYS, {"ids": ids[start : start + _POLL_BATCH]})
            live.update(rows)
        gone = set(ids) - live
        if gone:
            for digest in [d for d in self._by_hash if (p := self._by_hash.peek(d)) and p.key_id in gone]:
                self._drop(digest)
