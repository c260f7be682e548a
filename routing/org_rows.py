"""What the registry reads to build orgs' snapshots: one round trip for any number of orgs
in the common case, the platform's rows apart.

An org's first request waits on this read, so it is as few statements as the rows allow, each
built once (`bindparam`, SQLAlchemy's compiled cache), and orgs loading at the same time share them:
1. the orgs, their AI settings and config versions, the platform's version, and their
   connections with their vault records (outer joins: one row per connection, no read per key),
   with whether each org has agents and each connection stored conformance results;
2. their agents, only when one of them has any;
3. the stored conformance results of their connections, only when there are some.
The versions come in the same statement as the org and its connections, before any other row,
so a change made while the rest is read leaves the entry's version behind its rows: the poll
then reloads it (never the other way round, an entry newer than its version).

The platform's rows (its connections and their records, their conformance results, the
feature flags) are the same for every org: `read_platform` reads them once per platform config
version and every org load of that version shares them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import bindparam, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from foundation.orgs import Org
from providers.vault.tables import VaultSecret
from routing.config_versions import ConfigVersion
from routing.conformance.store import load_results
from routing.conformance.tables import ConformanceResult
from routing.flag_store import load_states
from routing.flags import FlagState
from routing.platform import PLATFORM_SCOPE
from routing.tables import Agent, Connection, OrgAISettings

T = TypeVar("T")

_READ_BATCH = 500
"""Orgs one read takes at most (the IN lists stay well under every backend's limits)."""


@dataclass(frozen=True, slots=True)
class Keyed:
    """Connections with the vault records their `secret_id` names (absent: none or missing)."""

    connections: Sequence[Connection] = ()
    secrets: Mapping[str, VaultSecret] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OrgRows:
    org: Org
    ai: OrgAISettings | None
    version: int
    platform_version: int
    own: Keyed
    agents: Sequence[Agent]
    conformance: Sequence[ConformanceResult]


@dataclass(frozen=True, slots=True)
class PlatformRows:
    version: int
    """The platform's config version read before these rows."""
    keyed: Keyed
    conformance: Sequence[ConformanceResult]
    flags: Sequence[FlagState]


def _version(scope: str) -> object:
    return select(ConfigVersion.version).where(ConfigVersion.org_id == scope).scalar_subquery()


_ORGS = (
    select(  # type: ignore[call-overload]
        Org,
        OrgAISettings,
        ConfigVersion.version,
        _version(PLATFORM_SCOPE),
        exists().where(Agent.org_id == Org.id),
        Connection,
        VaultSecret,
        exists().where(ConformanceResult.connection_id == Connection.id),
    )
    .outerjoin(OrgAISettings, OrgAISettings.org_id == Org.id)
    .outerjoin(ConfigVersion, ConfigVersion.org_id == Org.id)
    .outerjoin(Connection, Connection.org_id == Org.id)
    .outerjoin(VaultSecret, VaultSecret.id == Connection.secret_id)
    .where(Org.id.in_(bindparam("ids", expanding=True)))
)
"""Orgs with their heads and connections (built once: only the ids change)."""
_AGENTS = select(Agent).where(Agent.org_id.in_(bindparam("ids", expanding=True)))


async def read_orgs(session: AsyncSession, org_ids: Sequence[str]) -> dict[str, OrgRows]:
    """The rows of those orgs that exist, read by one statement, plus one for agents and one for
    conformance results only when there are any (orgs loading at the same time share them:
    `foundation.batched_reads`)."""
    ids = list(dict.fromkeys(org_ids))[:_READ_BATCH]
    heads: dict[str, tuple[Org, OrgAISettings | None, int, int]] = {}
    connections: dict[str, list[Connection]] = {}
    secrets: dict[str, VaultSecret] = {}
    with_agents = False
    scored: list[str] = []
    for org, ai, version, platform_version, has_agents, conn, secret, has_results in await session.execute(
        _ORGS, {"ids": ids}
    ):
        if org.id not in heads:
            heads[org.id] = (org, ai, int(version or 0), int(platform_version or 0))
            connections[org.id] = []
        with_agents = with_agents or bool(has_agents)
        if conn is not None:
            connections[org.id].append(conn)
            if has_results:
                scored.append(conn.id)
        if secret is not None:
            secrets[secret.id] = secret
    if not heads:
        return {}
    agents = list(await session.scalars(_AGENTS, {"ids": list(heads)})) if with_agents else []
    conformance = await load_results(session, scored) if scored else []
    org_of = {c.id: org_id for org_id, mine in connections.items() for c in mine}
    by_agent = _by(agents, lambda a: a.org_id)
    results = _by(conformance, lambda r: org_of.get(r.connection_id, ""))
    out: dict[str, OrgRows] = {}
    for org_id, (org, ai, version, platform_version) in heads.items():
        mine = connections[org_id]
        keyed = Keyed(mine, {s.id: s for c in mine if c.secret_id and (s := secrets.get(c.secret_id))})
        out[org_id] = OrgRows(
            org, ai, version, platform_version, keyed, by_agent.get(org_id, []), results.get(org_id, [])
        )
    return out


def _by(rows: Iterable[T], key: Callable[[T], str]) -> dict[str, list[T]]:
    out: dict[str, list[T]] = {}
    for row in rows:
        out.setdefault(key(row), []).append(row)
    return out


async def read_org(session: AsyncSession, org_id: str) -> OrgRows | None:
    """One org's rows, or None when it does not exist."""
    return (await read_orgs(session, [org_id])).get(org_id)


async def read_platform(session: AsyncSession, version: int) -> PlatformRows:
    """The platform's rows, read after its config version was seen to be `version`."""
    keyed = await _keyed(session, Connection.org_id.is_(None))
    ids = [c.id for c in keyed.connections]
    conformance = await load_results(session, ids) if ids else []
    return PlatformRows(version, keyed, conformance, await load_states(session))


async def _keyed(session: AsyncSession, where: object) -> Keyed:
    rows = await session.execute(
        select(Connection, VaultSecret)
        .outerjoin(VaultSecret, VaultSecret.id == Connection.secret_id)
        .where(where)  # type: ignore[arg-type]
    )
    connections: list[Connection] = []
    secrets: dict[str, VaultSecret] = {}
    for connection, secret in rows:
        connections.append(connection)
        if secret is not None:
            secrets[secret.id] = secret
    return Keyed(connections, secrets)
