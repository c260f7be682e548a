"""Per-org routing snapshots and credentials, held in memory and dropped when the org changes.

`Registry.get(org_id)` loads the org's rows once (`routing.org_rows`: org, AI settings,
connections with the vault envelopes of their keys, agents, stored conformance results, in one
round trip unless it has agents or conformance results; the platform's connections and the
feature flags are read once per platform config version and shared by every org), builds the snapshot with `routing.snapshot` (applying
the tier table through `billing_policy`), and serves it from memory until the org's
configuration, or the platform's, changes. The hot path never touches the database. An org's
first request waits for its own load only: loads of one org are shared (single flight), loads
of different orgs run side by side, and no lock is held across a load. A new API key's org is
usually loaded before `get` is asked: the key cache reads its rows in the key's statement and
hands them over (`preload_rows`), so an org's first request makes one statement. Rows read while
a change notice came are not loaded from (`changes`): the org then loads on its own.

At most `cache_size` orgs are held (`PATCHBAY_ORG_CACHE_SIZE`): the least recently used one is
dropped to make room and loads again on its next request. Hits, misses and evictions are
counted under `patchbay_cache_*_total{cache="org"}` (docs/metrics.md).

A platform change (a connection without an org) is a change of every org: it is announced
under `routing.platform.PLATFORM_SCOPE`, which drops every cached org, on each of the three
ways below.

A change reaches the cache three ways, from fastest to slowest:
1. In process: the admin API calls `Services.config_changed(org_id)`, whose listener is `changed`.
2. Across replicas, when Redis is configured: `changed` publishes the org id on a channel that
   every registry subscribes to. While Redis is unreachable, notices are neither sent nor
   received (one warning per outage; the subscriber tries again every `poll_interval`
   seconds) and the poll alone carries changes.
3. Always: a background poll (every `poll_interval` seconds, never per request) reads the
   `config_versions` counters of the orgs held (never of evicted ones), so a CLI change made by another process is
   picked up even without Redis. The same poll runs `poll_hooks` (the API-key cache's
   revocation check) on one session.

Credentials live in the org's entry and are replaced when the org reloads; a dropped entry's
stay reachable (weakly) while a request in flight still routes with it. A `VaultCredential`
holds only the sealed envelope and decrypts at `reveal`, so caching it keeps no plaintext.

A reload also compares each profile's key version (`key_version`: which connection and vault
record, the key's fingerprint and when it was set, or the environment variable named) with the
one the previous load saw, and clears the auth-profile state (`cooldowns`) of every profile
whose key changed, appeared or went away. Whoever replaced the key (the admin API of any
replica, the CLI, a script), the old key's failures stop holding the new one back once this
process reloads. The comparison uses the rows the reload reads anyway: no decrypt, no query.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import weakref
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from foundation.batched_reads import BatchedReads
from foundation.db import connections_of, read_reconnecting
from foundation.lru import LruCache
from providers.credentials import Credential, NoCredential
from providers.vault.store import Vault
from routing.config_versions import read_versions
from routing.connection_credentials import KeyVersion, connection_credential, credential_of, key_version
from routing.cooldown_store import CooldownStore
from routing.flags import enabled_flags
from routing.model import ConnectionView, OrgRouting
from routing.org_rows import Keyed, OrgRows, OrgRowsReader, PlatformRows, read_orgs, read_platform
from routing.platform import PLATFORM_SCOPE
from routing.redis_health import StoreHealth
from routing.snapshot import BillingPolicy, allow_all_billing, build_org_routing
from routing.tables import Connection

log = logging.getLogger("patchbay.routing")

PollHook = Callable[[AsyncSession], Awaitable[None]]

_STOP_SECONDS = 5.0
_POLL_TASK = "registry config poll"
"""How long `aclose` waits for its background tasks to end."""

DEFAULT_CACHE_SIZE = 10_000
"""Orgs a registry holds at most (`PATCHBAY_ORG_CACHE_SIZE`)."""


class NoticeListener(Protocol):
    """Another channel heard on the registry's subscription (the cooldown store's notices)."""

    notice_channel: str
    listening: bool
    """Set True once Redis confirms the channel's subscription, False when it is lost."""

    def notice(self, data: bytes | str) -> None: ...


class UnknownOrgError(LookupError):
    """The org does not exist (deleted after its key was cached, or a bad id)."""


@dataclass(frozen=True, slots=True, weakref_slot=True)
class OrgEntry:
    """One org as the hot path needs it."""

    routing: OrgRouting
    version: int
    platform_version: int = 0
    """The platform's config version when this entry was loaded: the poll compares it too."""
    agent_names: Mapping[str, str] = field(default_factory=dict)
    """Agent id -> name: API keys name agents by id, routing by name."""
    content_logging: bool = False
    """The org keeps prompts and completions in its request log (`orgs.content_logging`)."""
    credentials: Mapping[str, Credential] = field(default_factory=dict)
    """Connection id -> credential, for the org's connections and the platform's it sees."""


@dataclass(frozen=True, slots=True)
class _Platform:
    rows: PlatformRows
    credentials: Mapping[str, Credential]


class Registry:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        vault: Vault,
        *,
        billing_policy: BillingPolicy = allow_all_billing,
        environ: Mapping[str, str] | None = None,
        poll_interval: float = 2.0,
        redis: Redis | None = None,
        channel: str = "patchbay:config",
        cooldowns: CooldownStore | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        """`cooldowns`: the store whose profile state a reload clears when a key changed.
        `cache_size`: the most orgs held at once; the least recently used goes first."""
        self._sessions = sessions
        self._connect = connections_of(sessions)
        self._vault = vault
        self._billing_policy = billing_policy
        self._environ: Mapping[str, str] = environ if environ is not None else {}
        self._poll_interval = poll_interval
        self._redis = redis
        self._channel = channel
        self._cooldowns = cooldowns
        self._instance = secrets.token_hex(6)
        self._entries: LruCache[str, OrgEntry] = LruCache("org", cache_size, self._retire)
        # Entries dropped (changed or evicted) that a request in flight may still route with:
        # their credentials stay reachable for as long as that request holds the entry.
        self._retired: weakref.WeakValueDictionary[str, OrgEntry] = weakref.WeakValueDictionary()
        self._loading: dict[str, asyncio.Future[OrgEntry]] = {}
        self._stale: set[str] = set()
        """Orgs whose load under way started before a change notice: its result is not cached."""
        self._changes = 0
        self._platform: _Platform | None = None
        self._platform_epoch = 0
        self._reads: BatchedReads[str, tuple[OrgRows, _Platform]] = BatchedReads(self._read_batch)
        # Twice the orgs held: an org evicted and loaded again still finds its keys' versions.
        self._key_versions: LruCache[str, dict[str, KeyVersion]] = LruCache(None, 2 * cache_size)
        self._listeners: list[Callable[[str], None]] = []
        self.poll_hooks: list[PollHook] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._notice_listeners: dict[str, NoticeListener] = {}
        # Publishing and the subscription share one outage, so it is reported once.
        self._notices = StoreHealth(
            "config notice channel", "config changes reach this process by the config poll only", logger=log
        )

    async def get(self, org_id: str) -> OrgEntry:
        """The org's entry; loads it on first use. Concurrent first requests share one load,
        which runs as its own task so a caller that gives up does not cancel it for the others;
        other orgs' requests never wait for it."""
        entry = self._entries.get(org_id)
        if entry is not None:
            return entry
        task = self._loading.get(org_id)
        if task is None:
            self._stale.discard(org_id)
            task = asyncio.ensure_future(self._load_and_cache(org_id))
            self._loading[org_id] = task
            task.add_done_callback(lambda done: self._load_finished(org_id, done))
        return await asyncio.shield(task)

    def _load_finished(self, org_id: str, task: asyncio.Future[OrgEntry]) -> None:
        if self._loading.get(org_id) is task:
            del self._loading[org_id]
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have given up

    @property
    def changes(self) -> int:
        """How many times an org's (or the platform's) cached state was dropped so far: a read
        that began when this was `n` may be cached only if it still is (`preload_rows`)."""
        return self._changes

    async def preload(self, org_ids: Iterable[str], *, ahead: bool = False) -> None:
        """Load those of `org_ids` neither held nor loading, in one read (`server.v1.prewarm`:
        before any request asked). Requests for these orgs meanwhile wait for this load (single
        flight, as with `get`). Should the read fail or be cancelled, each org is handed to a load
        of its own, so a waiter sees the error `get` would have given.
        `ahead`: counted as no miss, and never past the cache's size (it evicts nothing)."""
        claims = self._claim(org_ids, ahead=ahead)
        if claims:
            await self._fill(claims, self._read_batch(list(claims)))

    async def preload_rows(
        self, conn: AsyncConnection, read: OrgRowsReader, org_ids: Iterable[str], since: int
    ) -> None:
        """Load those of `org_ids` neither held nor loading from rows read already: the API-key
        cache reads a new key and its org's rows in one statement, begun when `changes` was
        `since`. If anything was dropped since, those rows may predate a change whose notice
        came while they were read: nothing is loaded, and each org loads on its own request.
        Otherwise as `preload` (the rest of the read, when the orgs have agents or conformance
        results or the platform's rows are needed, on `conn`)."""
        if since != self._changes:
            return
        claims = self._claim(org_ids, ahead=False)
        if claims:
            await self._fill(claims, self._completed(conn, read, claims))

    def _claim(self, org_ids: Iterable[str], *, ahead: bool) -> dict[str, asyncio.Future[OrgEntry]]:
        """Mark those of `org_ids` neither held nor loading as loading, each with a future its
        requests wait for."""
        loop = asyncio.get_running_loop()
        claims: dict[str, asyncio.Future[OrgEntry]] = {}
        for org_id in org_ids:
            if org_id in claims or org_id in self._loading or self._entries.peek(org_id) is not None:
                continue
            if ahead and len(self._entries) + len(claims) >= self._entries.size:
                break
            if not ahead:
                self._entries.get(org_id)  # absent: counted as the miss this load is
            self._stale.discard(org_id)
            claim = claims[org_id] = self._loading[org_id] = loop.create_future()
            claim.add_done_callback(functools.partial(self._load_finished, org_id))
        return claims

    async def _fill(
        self,
        claims: dict[str, asyncio.Future[OrgEntry]],
        read: Coroutine[Any, Any, dict[str, tuple[OrgRows, _Platform]]],
    ) -> None:
        """Settle the claims with the entries built from `read`; if it fails, hand each over."""
        try:
            reads = await read
        except BaseException:
            for org_id, claim in claims.items():
                self._hand_over(org_id, claim)
            raise
        for org_id, claim in claims.items():
            found = reads.get(org_id)
            try:
                if found is None:
                    raise UnknownOrgError(org_id)
                entry = await self._settle(org_id, *self._entry(org_id, *found))
            except Exception as exc:
                if not claim.done():
                    claim.set_exception(exc)
            else:
                if not claim.done():
                    claim.set_result(entry)

    def _hand_over(self, org_id: str, claim: asyncio.Future[OrgEntry]) -> None:
        """Settle a claim made by `preload` with a load of the org's own."""
        task = asyncio.ensure_future(self._load_and_cache(org_id))

        def settle(done: asyncio.Task[OrgEntry]) -> None:
            if claim.done():
                if not done.cancelled():
                    done.exception()  # retrieved: nobody waits for it any more
            elif done.cancelled():
                claim.cancel()
            elif (error := done.exception()) is not None:
                claim.set_exception(error)
            else:
                claim.set_result(done.result())

        task.add_done_callback(settle)

    async def _load_and_cache(self, org_id: str) -> OrgEntry:
        return await self._settle(org_id, *await self._load(org_id))

    async def _settle(self, org_id: str, entry: OrgEntry, keys: dict[str, KeyVersion]) -> OrgEntry:
        """Cache a loaded entry (unless a change notice overtook its load) and clear the
        cooldowns of the profiles whose key changed since the previous load."""
        if org_id in self._stale:
            # A change notice overtook this load: its waiters get the entry, the next load caches.
            return entry
        replaced = self._replaced_keys(org_id, keys)
        if replaced:
            # Before the entry is served, so no request routed with the new key sees the old
            # key's cooldown.
            await self._clear_cooldowns(org_id, replaced)
        if org_id not in self._stale:  # again: a notice may have come meanwhile
            self._entries.put(org_id, entry)
        return entry

    def _retire(self, org_id: str, entry: OrgEntry) -> None:
        self._retired[org_id] = entry

    def _replaced_keys(self, org_id: str, keys: dict[str, KeyVersion]) -> list[str]:
        """Profiles whose key version differs from the previous load's, and remember the new ones.

        The first load of an org in this process has nothing to compare with: its profiles'
        state is whatever the store holds (the admin API clears it when it replaces a key).
        """
        before = self._key_versions.get(org_id)
        self._key_versions.put(org_id, keys)
        if before is None:
            return []
        return sorted(p for p in before.keys() | keys.keys() if before.get(p) != keys.get(p))

    async def _clear_cooldowns(self, org_id: str, profile_ids: list[str]) -> None:
        if self._cooldowns is None:
            return
        for profile_id in profile_ids:
            try:
                await self._cooldowns.clear(org_id, profile_id)
            except Exception as exc:  # the load must not fail: the state expires on its own
                log.warning(
                    "cooldown not cleared after a key change",
                    extra={"fields": {"org_id": org_id, "profile": profile_id, "error": type(exc).__name__}},
                )
                continue
            log.info(
                "key changed: cooldown cleared", extra={"fields": {"org_id": org_id, "profile": profile_id}}
            )

    def credential(self, conn: ConnectionView) -> Credential:
        """The executor's `credentials` callable: the credential of a connection of the org's
        current entry, or of the dropped entry the caller still routes with."""
        entry = self._entries.peek(conn.org_id) or self._retired.get(conn.org_id)
        credential = entry.credentials.get(conn.connection_id) if entry is not None else None
        return credential or NoCredential()

    def cached(self, org_id: str) -> OrgEntry | None:
        """The org's entry if this process holds it now; never loads (and counts no lookup)."""
        return self._entries.peek(org_id)

    @property
    def full(self) -> bool:
        """Whether it holds as many orgs as its size allows (the next load evicts one)."""
        return len(self._entries) >= self._entries.size

    def cached_orgs(self) -> list[str]:
        return list(self._entries)

    def add_listener(self, listener: Callable[[str], None]) -> None:
        """Called with the org id whenever an org's cached state is dropped, whatever the cause."""
        self._listeners.append(listener)

    def invalidate(self, org_id: str) -> None:
        """Drop the org's snapshot in this process only; `PLATFORM_SCOPE` drops every org's.

        Its credentials stay reachable until the reload replaces them: a request already holding
        the old snapshot must not find its connection's credential gone, call upstream without a
        key and put a healthy profile in an auth cooldown. The reload swaps in the new credentials
        (a replaced key, or none for a revoked connection).
        """
        self._changes += 1
        if org_id == PLATFORM_SCOPE:
            self._platform = None
            self._platform_epoch += 1
            # Loads under way count too: they may have read the platform rows before the change.
            for each in {*self._entries, *self._loading}:
                self.invalidate(each)
            return
        if org_id in self._loading:
            self._stale.add(org_id)
        entry = self._entries.pop(org_id)
        if entry is not None:
            self._retire(org_id, entry)
        for listener in self._listeners:
            listener(org_id)

    def changed(self, org_id: str) -> None:
        """A change made in this process: drop it here and tell the other replicas."""
        self.invalidate(org_id)
        if self._redis is not None:
            self._spawn(self._publish(org_id), "registry config publish")

    async def _publish(self, org_id: str) -> None:
        assert self._redis is not None
        try:
            await self._redis.publish(self._channel, f"{self._instance}:{org_id}")
        except Exception as exc:  # the poll still carries the change
            self._notices.failed(exc)
        else:
            self._notices.succeeded()

    async def _read_batch(self, org_ids: list[str]) -> dict[str, tuple[OrgRows, _Platform]]:
        """The rows of orgs whose loads started together (`BatchedReads`), on one connection:
        Core statements, no ORM session unless an org has agents or conformance results."""

        async def read(conn: AsyncConnection) -> dict[str, tuple[OrgRows, _Platform]]:
            return await self._with_platform(conn, await read_orgs(conn, org_ids))

        return await read_reconnecting(self._connect, read)

    async def _completed(
        self, conn: AsyncConnection, read: OrgRowsReader, org_ids: Collection[str]
    ) -> dict[str, tuple[OrgRows, _Platform]]:
        return await self._with_platform(conn, await read.rows(conn, org_ids))

    async def _with_platform(
        self, conn: AsyncConnection, orgs: dict[str, OrgRows]
    ) -> dict[str, tuple[OrgRows, _Platform]]:
        """Each org's rows with the platform's at the version they were read with."""
        out: dict[str, tuple[OrgRows, _Platform]] = {}
        for org_id, rows in orgs.items():
            platform = self._platform
            if platform is None or platform.rows.version != rows.platform_version:
                platform = await self._read_platform(conn, rows.platform_version)
            out[org_id] = (rows, platform)
        return out

    async def _load(self, org_id: str) -> tuple[OrgEntry, dict[str, KeyVersion]]:
        read = await self._reads.read(org_id)
        if read is None:
            raise UnknownOrgError(org_id)
        return self._entry(org_id, *read)

    def _entry(
        self, org_id: str, rows: OrgRows, platform: _Platform
    ) -> tuple[OrgEntry, dict[str, KeyVersion]]:
        """The org's entry built from its rows (no I/O), and its profiles' key versions."""
        own = rows.own.connections
        shared = platform.rows.keyed.connections
        routing = build_org_routing(
            rows.org,
            rows.ai,
            own,
            rows.agents,
            platform=shared,
            billing_policy=self._billing_policy,
            conformance=[*rows.conformance, *platform.rows.conformance],
            flags=enabled_flags(platform.rows.flags, org_id),
        )
        for warning in routing.warnings:
            log.warning(
                "routing configuration problem", extra={"fields": {"org_id": org_id, "problem": warning}}
            )
        entry = OrgEntry(
            routing=routing,
            version=rows.version,
            platform_version=rows.platform_version,
            agent_names=MappingProxyType({a.id: a.name for a in rows.agents}),
            content_logging=bool(rows.org.content_logging),
            credentials=MappingProxyType({**platform.credentials, **self._credentials(rows.own)}),
        )
        return entry, {c.profile_id: key_version(c) for c in (*shared, *own)}

    async def _read_platform(self, conn: AsyncConnection, version: int) -> _Platform:
        """The platform's rows at `version`, kept for the next loads unless a platform change
        came while they were read."""
        epoch = self._platform_epoch
        rows = await read_platform(conn, version)
        platform = _Platform(rows, self._credentials(rows.keyed))
        if epoch == self._platform_epoch:
            self._platform = platform
        return platform

    def _credentials(self, keyed: Keyed) -> dict[str, Credential]:
        return {
            c.id: credential_of(self._vault, c, keyed.secrets.get(c.secret_id or ""), self._environ)
            for c in keyed.connections
        }

    async def credential_for(self, session: AsyncSession, row: Connection) -> Credential:
        """The credential a connection row calls with (also used by verification probes)."""
        return await connection_credential(session, self._vault, row, self._environ)

    async def poll_once(self) -> None:
        """Drop every held org whose change counter moved, then run the poll hooks. Only the orgs
        held are read: evicted ones load afresh on their next request anyway."""
        async with self._sessions() as session:
            held = {org_id: entry for org_id in self._entries if (entry := self._entries.peek(org_id))}
            if held:
                versions = await read_versions(session, [*held, PLATFORM_SCOPE])
                platform = versions.get(PLATFORM_SCOPE, 0)
                for org_id, entry in held.items():
                    moved = versions.get(org_id, 0) != entry.version or platform != entry.platform_version
                    if moved and self._entries.peek(org_id) is entry:
                        self.invalidate(org_id)
            for hook in self.poll_hooks:
                await hook(session)

    async def _poll_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._poll_interval)
                return  # stopped between polls, never in the middle of one's database reads
            try:
                await self.poll_once()
            except Exception as exc:
                log.warning("config poll failed", extra={"fields": {"error": type(exc).__name__}})

    def add_notice_listener(self, listener: NoticeListener) -> None:
        """Hear `listener.notice_channel` on the config subscription too (before `start`): one
        subscriber connection per process carries every notice."""
        self._notice_listeners[listener.notice_channel] = listener

    async def _listen(self) -> None:
        assert self._redis is not None
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel, *self._notice_listeners)
                    async for message in pubsub.listen():
                        channel = message.get("channel")
                        other = self._notice_listeners.get(
                            channel.decode() if isinstance(channel, bytes) else str(channel)
                        )
                        if other is not None:
                            if message.get("type") == "subscribe":
                                other.listening = True
                            elif message.get("type") == "message":
                                other.notice(message["data"])
                            continue
                        if message.get("type") == "subscribe":
                            # Redis confirmed it: notices published from now on reach us.
                            self._notices.succeeded()
                            self._subscribed.set()
                            continue
                        if message.get("type") != "message":
                            continue
                        raw = message["data"]
                        text = raw.decode() if isinstance(raw, bytes) else str(raw)
                        sender, _, org_id = text.partition(":")
                        if org_id and sender != self._instance:
                            self.invalidate(org_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                for other in self._notice_listeners.values():
                    other.listening = False
                # Not a spin: one attempt per poll interval, one warning per outage.
                self._notices.failed(exc)
                await asyncio.sleep(self._poll_interval)

    async def wait_subscribed(self) -> None:
        """For tests and start-up: returns once Redis has confirmed the subscription."""
        await self._subscribed.wait()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        self._stopping.clear()
        self._spawn(self._poll_loop(), _POLL_TASK)
        if self._redis is not None:
            self._spawn(self._listen(), "registry config notices")

    async def aclose(self) -> None:
        """Stop the poll and the subscriber. The poll stops between two polls (cancelling it in
        the middle of a database read can leave its connection's clean-up waiting); the
        subscriber is cancelled. Bounded: a task still running after `_STOP_SECONDS` is
        cancelled and, if it does not end either, left behind with a warning naming it rather
        than hanging shutdown."""
        tasks, self._tasks = list(self._tasks), set()
        self._stopping.set()
        for task in tasks:
            if task.get_name() != _POLL_TASK:
                task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=_STOP_SECONDS)
            for task in pending:
                task.cancel()
            if pending:
                _, pending = await asyncio.wait(pending, timeout=_STOP_SECONDS)
            if pending:
                log.warning(
                    "registry background tasks did not stop",
                    extra={
                        "fields": {"pending": len(pending), "tasks": sorted(t.get_name() for t in pending)}
                    },
                )
            for task in tasks:
                if task.done() and not task.cancelled():
                    task.exception()  # retrieved: it was being stopped
        if self._redis is not None:
            await self._redis.aclose()
