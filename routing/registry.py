"""Per-org routing snapshots and credentials, held in memory and dropped when the org changes.

`Registry.get(org_id)` loads the org's rows once (org, AI settings, connections, agents, the
platform's connections, the feature flags (evaluated for the org: routing/flags.py), the vault envelopes of their keys and their stored conformance results,
for the gates), builds the snapshot with
`routing.snapshot` (applying the tier table through `billing_policy`), and serves it from
memory until the org's configuration, or the platform's, changes. The hot path never touches
the database.

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
   `config_versions` counters of the cached orgs, so a CLI change made by another process is
   picked up even without Redis. The same poll runs `poll_hooks` (the API-key cache's
   revocation check) on one session.

Credentials are cached per connection and replaced when the org reloads. A `VaultCredential`
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
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from foundation.orgs import Org
from providers.credentials import Credential, NoCredential
from providers.vault.errors import VaultError
from providers.vault.store import Vault
from routing.config_versions import read_versions
from routing.conformance.store import load_results
from routing.connections import KEY_FIELD
from routing.cooldown_store import CooldownStore
from routing.env_reference import ALLOW_SETTING, is_reserved
from routing.flag_store import load_states
from routing.flags import enabled_flags
from routing.model import ConnectionStatus, ConnectionView, OrgRouting
from routing.platform import PLATFORM_SCOPE, scope_of
from routing.redis_health import StoreHealth
from routing.snapshot import BillingPolicy, allow_all_billing, build_org_routing
from routing.tables import Agent, Connection, OrgAISettings

log = logging.getLogger("patchbay.routing")

PollHook = Callable[[AsyncSession], Awaitable[None]]

_STOP_SECONDS = 5.0
"""How long `aclose` waits for its background tasks to end."""

KeyVersion = tuple[str, str | None, str | None, datetime | None, str | None]
"""(connection id, vault record id, key fingerprint, when the key was set, environment variable)."""


class UnknownOrgError(LookupError):
    """The org does not exist (deleted after its key was cached, or a bad id)."""


class EnvReferenceCredential:
    """A key the operator keeps in the server's environment; the name is stored, never the value."""

    __slots__ = ("_environ", "_name")

    def __init__(self, name: str, environ: Mapping[str, str]) -> None:
        self._name = name
        self._environ = environ

    @property
    def fingerprint(self) -> str:
        return f"env:{self._name}"

    def reveal(self, purpose: str) -> str:
        return self._environ.get(self._name, "")

    def __repr__(self) -> str:
        return f"EnvReferenceCredential({self._name!r})"


@dataclass(frozen=True, slots=True)
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
    ) -> None:
        """`cooldowns`: the store whose profile state a reload clears when a key changed."""
        self._sessions = sessions
        self._vault = vault
        self._billing_policy = billing_policy
        self._environ: Mapping[str, str] = environ if environ is not None else {}
        self._poll_interval = poll_interval
        self._redis = redis
        self._channel = channel
        self._cooldowns = cooldowns
        self._instance = secrets.token_hex(6)
        self._entries: dict[str, OrgEntry] = {}
        self._loading: dict[str, asyncio.Task[OrgEntry]] = {}
        self._generation: dict[str, int] = {}
        self._credentials: dict[str, Credential] = {}
        self._org_connections: dict[str, set[str]] = {}
        self._key_versions: dict[str, dict[str, KeyVersion]] = {}
        self._listeners: list[Callable[[str], None]] = []
        self.poll_hooks: list[PollHook] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscribed = asyncio.Event()
        # Publishing and the subscription share one outage, so it is reported once.
        self._notices = StoreHealth(
            "config notice channel", "config changes reach this process by the config poll only", logger=log
        )

    async def get(self, org_id: str) -> OrgEntry:
        """The org's entry; loads it on first use. Concurrent first requests share one load,
        which runs as its own task so a caller that gives up does not cancel it for the others."""
        entry = self._entries.get(org_id)
        if entry is not None:
            return entry
        task = self._loading.get(org_id)
        if task is None:
            task = asyncio.ensure_future(self._load_and_cache(org_id, self._generation.get(org_id, 0)))
            self._loading[org_id] = task
            task.add_done_callback(lambda done: self._load_finished(org_id, done))
        return await asyncio.shield(task)

    def _load_finished(self, org_id: str, task: asyncio.Task[OrgEntry]) -> None:
        if self._loading.get(org_id) is task:
            del self._loading[org_id]
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have given up

    async def _load_and_cache(self, org_id: str, generation: int) -> OrgEntry:
        entry, creds, keys = await self._load(org_id)
        if self._generation.get(org_id, 0) != generation:
            # A change notice overtook this load: its waiters get the entry, the next load caches.
            return entry
        replaced = self._replaced_keys(org_id, keys)
        if replaced:
            # Before the entry is served, so no request routed with the new key sees the old
            # key's cooldown.
            await self._clear_cooldowns(org_id, replaced)
        if self._generation.get(org_id, 0) == generation:  # again: a notice may have come meanwhile
            self._entries[org_id] = entry
            for gone in self._org_connections.get(org_id, set()) - creds.keys():
                self._credentials.pop(gone, None)
            self._credentials.update(creds)
            self._org_connections[org_id] = set(creds)
        return entry

    def _replaced_keys(self, org_id: str, keys: dict[str, KeyVersion]) -> list[str]:
        """Profiles whose key version differs from the previous load's, and remember the new ones.

        The first load of an org in this process has nothing to compare with: its profiles'
        state is whatever the store holds (the admin API clears it when it replaces a key).
        """
        before = self._key_versions.get(org_id)
        self._key_versions[org_id] = keys
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
        """The executor's `credentials` callable: the cached credential of a loaded connection."""
        return self._credentials.get(conn.connection_id) or NoCredential()

    def cached(self, org_id: str) -> OrgEntry | None:
        """The org's entry if this process holds it now; never loads."""
        return self._entries.get(org_id)

    def cached_orgs(self) -> list[str]:
        return list(self._entries)

    def add_listener(self, listener: Callable[[str], None]) -> None:
        """Called with the org id whenever an org's cached state is dropped, whatever the cause."""
        self._listeners.append(listener)

    def invalidate(self, org_id: str) -> None:
        """Drop the org's snapshot in this process only; `PLATFORM_SCOPE` drops every org's.

        Its credentials stay until the reload replaces them: a request already holding the old
        snapshot must not find its connection's credential gone, call upstream without a key
        and put a healthy profile in an auth cooldown. The reload swaps in the new credentials
        (a replaced key, or none for a revoked connection) and forgets deleted connections'.
        """
        if org_id == PLATFORM_SCOPE:
            # Loads under way count too: they may have read the platform rows before the change.
            for each in {*self._entries, *self._loading}:
                self.invalidate(each)
            return
        self._generation[org_id] = self._generation.get(org_id, 0) + 1
        self._entries.pop(org_id, None)
        for listener in self._listeners:
            listener(org_id)

    def changed(self, org_id: str) -> None:
        """A change made in this process: drop it here and tell the other replicas."""
        self.invalidate(org_id)
        if self._redis is not None:
            self._spawn(self._publish(org_id))

    async def _publish(self, org_id: str) -> None:
        assert self._redis is not None
        try:
            await self._redis.publish(self._channel, f"{self._instance}:{org_id}")
        except Exception as exc:  # the poll still carries the change
            self._notices.failed(exc)
        else:
            self._notices.succeeded()

    async def _load(self, org_id: str) -> tuple[OrgEntry, dict[str, Credential], dict[str, KeyVersion]]:
        async with self._sessions() as session:
            versions = await read_versions(session, [org_id, PLATFORM_SCOPE])
            org = await session.get(Org, org_id)
            if org is None:
                raise UnknownOrgError(org_id)
            ai = await session.get(OrgAISettings, org_id)
            conns = list(await session.scalars(select(Connection).where(Connection.org_id == org_id)))
            platform = list(await session.scalars(select(Connection).where(Connection.org_id.is_(None))))
            agents = list(await session.scalars(select(Agent).where(Agent.org_id == org_id)))
            conformance = await load_results(session, [c.id for c in (*conns, *platform)])
            flags = enabled_flags(await load_states(session), org_id)
            creds = {c.id: await self.credential_for(session, c) for c in (*conns, *platform)}
        routing = build_org_routing(
            org,
            ai,
            conns,
            agents,
            platform=platform,
            billing_policy=self._billing_policy,
            conformance=conformance,
            flags=flags,
        )
        for warning in routing.warnings:
            log.warning(
                "routing configuration problem", extra={"fields": {"org_id": org_id, "problem": warning}}
            )
        entry = OrgEntry(
            routing=routing,
            version=versions.get(org_id, 0),
            platform_version=versions.get(PLATFORM_SCOPE, 0),
            agent_names=MappingProxyType({a.id: a.name for a in agents}),
            content_logging=bool(org.content_logging),
        )
        return entry, creds, {c.profile_id: key_version(c) for c in (*platform, *conns)}

    async def credential_for(self, session: AsyncSession, row: Connection) -> Credential:
        """The credential a connection row calls with (also used by verification probes)."""
        return await connection_credential(session, self._vault, row, self._environ)

    async def poll_once(self) -> None:
        """Drop every cached org whose change counter moved, then run the poll hooks."""
        async with self._sessions() as session:
            cached = dict(self._entries)
            if cached:
                versions = await read_versions(session, [*cached, PLATFORM_SCOPE])
                platform = versions.get(PLATFORM_SCOPE, 0)
                for org_id, entry in cached.items():
                    moved = versions.get(org_id, 0) != entry.version or platform != entry.platform_version
                    if moved and self._entries.get(org_id) is entry:
                        self.invalidate(org_id)
            for hook in self.poll_hooks:
                await hook(session)

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval)
            try:
                await self.poll_once()
            except Exception as exc:
                log.warning("config poll failed", extra={"fields": {"error": type(exc).__name__}})

    async def _listen(self) -> None:
        assert self._redis is not None
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    async for message in pubsub.listen():
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
                # Not a spin: one attempt per poll interval, one warning per outage.
                self._notices.failed(exc)
                await asyncio.sleep(self._poll_interval)

    async def wait_subscribed(self) -> None:
        """For tests and start-up: returns once Redis has confirmed the subscription."""
        await self._subscribed.wait()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        self._spawn(self._poll_loop())
        if self._redis is not None:
            self._spawn(self._listen())

    async def aclose(self) -> None:
        """Stop the poll and the subscriber. Bounded: a subscriber whose Redis connection does
        not answer the unsubscribe is left behind (with a warning) rather than hanging shutdown."""
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=_STOP_SECONDS)
            if pending:
                log.warning(
                    "registry background tasks did not stop", extra={"fields": {"pending": len(pending)}}
                )
            for task in tasks:
                if task.done() and not task.cancelled():
                    task.exception()  # retrieved: it was being stopped
        if self._redis is not None:
            await self._redis.aclose()


def key_version(row: Connection) -> KeyVersion:
    """What identifies the key a connection calls with, without decrypting it.

    Every key write (`Connections.create`, `replace_key`, the legacy import) sets `key_set_at`,
    so a key replaced by one with the same fingerprint still counts as new; the connection id
    tells a profile deleted and created again apart. Re-wrapping under a new master key (vault
    rotation) touches none of these: the key itself is unchanged.
    """
    return (row.id, row.secret_id, row.key_fingerprint, row.key_set_at, row.env_reference)


async def connection_credential(
    session: AsyncSession, vault: Vault, row: Connection, environ: Mapping[str, str]
) -> Credential:
    """The credential a connection calls with: its vault key, its environment reference, or none.

    Inactive connections get none. A key the vault cannot open yields none too (and an error
    line for the operator): the upstream then refuses the call and routing falls back.
    """
    if row.status != ConnectionStatus.ACTIVE.value:
        return NoCredential()
    if row.env_reference:
        # `environ` holds only allowlisted names (`allowed_environ`); checking again here keeps a
        # row saved before the allowlist, or a caller passing the raw environment, from leaking.
        if is_reserved(row.env_reference) or row.env_reference not in environ:
            log.error(
                "connection environment reference refused",
                extra={"fields": {"org_id": row.org_id, "profile": row.profile_id, "setting": ALLOW_SETTING}},
            )
            return NoCredential()
        return EnvReferenceCredential(row.env_reference, environ)
    if row.secret_id is None:
        return NoCredential()
    try:
        return await vault.credential(
            row.secret_id, org_id=scope_of(row.org_id), owner_id=row.id, field=KEY_FIELD, session=session
        )
    except VaultError as exc:
        log.error(
            "connection key unavailable",
            extra={"fields": {"org_id": row.org_id, "profile": row.profile_id, "error": type(exc).__name__}},
        )
        return NoCredential()
