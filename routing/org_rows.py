"""What the registry reads to build one org's snapshot: four round trips, the platform's rows apart.

An org's first request waits on this read, so it is as few queries as the rows allow:
1. the org, its AI settings and the org's and the platform's config versions (one row);
2. its connections with their vault records (an outer join: no read per key);
3. its agents;
4. the stored conformance results of its connections (skipped when it has none).
The versions come in the same statement as the org, before any other row, so a change made
while the rest is read leaves the entry's version behind its rows: the poll then reloads it
(never the other way round, an entry newer than its version).

The platform's rows (its connections and their records, their conformance results, the
feature flags) are the same for every org: `read_platform` reads them once per platform config
version and every org load of that version shares them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
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


async def read_org(session: AsyncSession, org_id: str) -> OrgRows | None:
    """The org's rows, or None when it does not exist."""
    head = (
        await session.execute(
            select(Org, OrgAISettings, _version(org_id), _version(PLATFORM_SCOPE))  # type: ignore[call-overload]
            .outerjoin(OrgAISettings, OrgAISettings.org_id == Org.id)
            .where(Org.id == org_id)
        )
    ).one_or_none()
    if head is None:
        return None
    org, ai, version, platform_version = head
    own = await _keyed(session, Connection.org_id == org_id)
    agents = list(await session.scalars(select(Agent).where(Agent.org_id == org_id)))
    ids = [c.id for c in own.connections]
    conformance = await load_results(session, ids) if ids else []
    return OrgRows(org, ai, int(version or 0), int(platform_version or 0), own, agents, conformance)


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
