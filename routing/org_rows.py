"""What the registry reads to build orgs' snapshots: one round trip for any number of orgs
in the common case, the platform's rows apart.

An org's first request waits on this read, so it is as few statements as the rows allow, each
built once (`bindparam`, SQLAlchemy's compiled cache), Core columns rather than ORM objects
(only those `routing.rows` names, a third less CPU), and orgs loading at the same time share them:
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
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Table, bindparam, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from foundation.orgs import Org
from providers.vault.tables import VaultSecret
from routing.config_versions import ConfigVersion
from routing.conformance.store import load_results
from routing.conformance.tables import ConformanceResult
from routing.flag_store import load_states
from routing.flags import FlagState
from routing.platform import PLATFORM_SCOPE
from routing.rows import AISettingsRow, ConnectionRow, OrgHead, SecretRow
from routing.tables import Agent, Connection, OrgAISettings

T = TypeVar("T")

_READ_BATCH = 500
"""Orgs one read takes at most (the IN lists stay well under every backend's limits)."""


@dataclass(frozen=True, slots=True)
class Keyed:
    """Connections with the vault records their `secret_id` names (absent: none or missing)."""

    connections: Sequence[ConnectionRow] = ()
    secrets: Mapping[str, SecretRow] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OrgRows:
    org: OrgHead
    ai: AISettingsRow | None
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


def _table(model: type[Any]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _columns(table: Table, row: type[Any]) -> list[ColumnElement[Any]]:
    """The columns named by the named tuple `row`'s fields, in its order."""
    return [table.c[name] for name in row._fields]


# Tables, not ORM entities: the statements are Core and load no objects.
_O, _AIS, _V, _C, _S = map(_table, (Org, OrgAISettings, ConfigVersion, Connection, VaultSecret))
_A, _R = _table(Agent), _table(ConformanceResult)
_P = _V.alias("platform_version")
_ORG_COLS = _columns(_O, OrgHead)
_AI_COLS = _columns(_AIS, AISettingsRow)
_CONN_COLS = _columns(_C, ConnectionRow)
_SECRET_COLS = _columns(_S, SecretRow)
# Where each table's share of an `_ORGS` row starts.
_AI = len(_ORG_COLS)
_HEAD = _AI + len(_AI_COLS)  # then: version, platform version, has agents
_CONN = _HEAD + 3
_SECRET = _CONN + len(_CONN_COLS)
_SCORED = _SECRET + len(_SECRET_COLS)

_ORGS = (
    select(
        *_ORG_COLS,
        *_AI_COLS,
        _V.c.version,
        select(_P.c.version).where(_P.c.org_id == PLATFORM_SCOPE).scalar_subquery(),
        exists().where(_A.c.org_id == _O.c.id),
        *_CONN_COLS,
        *_SECRET_COLS,
        exists().where(_R.c.connection_id == _C.c.id),
    )
    .select_from(_O)
    .outerjoin(_AIS, _AIS.c.org_id == _O.c.id)
    .outerjoin(_V, _V.c.org_id == _O.c.id)
    .outerjoin(_C, _C.c.org_id == _O.c.id)
    .outerjoin(_S, _S.c.id == _C.c.secret_id)
    .where(_O.c.id.in_(bindparam("ids", expanding=True)))
)
"""Orgs with their heads and connections, Core columns only (built once: only the ids change)."""
_AGENTS = select(Agent).where(Agent.org_id.in_(bindparam("ids", expanding=True)))
_PLATFORM = (
    select(*_CONN_COLS, *_SECRET_COLS)
    .select_from(_C)
    .outerjoin(_S, _S.c.id == _C.c.secret_id)
    .where(_C.c.org_id.is_(None))
)


async def read_orgs(session: AsyncSession, org_ids: Sequence[str]) -> dict[str, OrgRows]:
    """The rows of those orgs that exist, read by one statement, plus one for agents and one for
    conformance results only when there are any (orgs loading at the same time share them:
    `foundation.batched_reads`)."""
    ids = list(dict.fromkeys(org_ids))[:_READ_BATCH]
    heads: dict[str, tuple[OrgHead, AISettingsRow | None, int, int]] = {}
    connections: dict[str, list[ConnectionRow]] = {}
    secrets: dict[str, SecretRow] = {}
    with_agents = False
    scored: list[str] = []
    # On the session's connection: a Core statement needs none of the ORM's execution.
    for row in await (await session.connection()).execute(_ORGS, {"ids": ids}):
        org_id = row[0]
        if org_id not in heads:
            ai = AISettingsRow._make(row[_AI:_HEAD]) if row[_AI] is not None else None
            heads[org_id] = (OrgHead._make(row[:_AI]), ai, int(row[_HEAD] or 0), int(row[_HEAD + 1] or 0))
            connections[org_id] = []
        with_agents = with_agents or bool(row[_HEAD + 2])
        if row[_CONN] is not None:
            conn = ConnectionRow._make(row[_CONN:_SECRET])
            connections[org_id].append(conn)
            if row[_SCORED]:
                scored.append(conn.id)
        if row[_SECRET] is not None:
            secret = SecretRow._make(row[_SECRET:_SCORED])
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
    connections: list[ConnectionRow] = []
    secrets: dict[str, SecretRow] = {}
    for row in await (await session.connection()).execute(_PLATFORM):
        connections.append(ConnectionRow._make(row[: len(_CONN_COLS)]))
        if row[len(_CONN_COLS)] is not None:
            secret = SecretRow._make(row[len(_CONN_COLS) :])
            secrets[secret.id] = secret
    ids = [c.id for c in connections]
    conformance = await load_results(session, ids) if ids else []
    return PlatformRows(version, Keyed(connections, secrets), conformance, await load_states(session))
