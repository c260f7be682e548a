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

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, FromClause, Select, Table, bindparam, exists, lambda_stmt, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

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

_ORG_PART = (
    *_ORG_COLS,
    *_AI_COLS,
    _V.c.version,
    select(_P.c.version).where(_P.c.org_id == PLATFORM_SCOPE).scalar_subquery(),
    exists().where(_A.c.org_id == _O.c.id),
    *_CONN_COLS,
    *_SECRET_COLS,
    exists().where(_R.c.connection_id == _C.c.id),
)


def _joined(source: FromClause) -> FromClause:
    """`source` (orgs, or a table already joined to them) with the orgs' heads and connections."""
    return (
        source.outerjoin(_AIS, _AIS.c.org_id == _O.c.id)
        .outerjoin(_V, _V.c.org_id == _O.c.id)
        .outerjoin(_C, _C.c.org_id == _O.c.id)
        .outerjoin(_S, _S.c.id == _C.c.secret_id)
    )


def with_org_rows(source: FromClause, org_id: ColumnElement[Any], *lead: ColumnElement[Any]) -> Select[Any]:
    """A select of `lead`, then the columns `OrgRowsReader(len(lead))` reads, of the org that
    `org_id` (a column of `source`) names: one row per connection of that org (one with nulls
    for the org when it has none or does not exist). The API-key cache reads a new key and its
    org this way, in one statement."""
    return select(*lead, *_ORG_PART).select_from(_joined(source.outerjoin(_O, _O.c.id == org_id)))


_ORGS_SELECT = (
    select(*_ORG_PART).select_from(_joined(_O)).where(_O.c.id.in_(bindparam("ids", expanding=True)))
)
_ORGS = lambda_stmt(lambda: _ORGS_SELECT)
"""Orgs with their heads and connections, Core columns only (built once: only the ids change).
As a lambda statement over a module constant, SQLAlchemy finds its compiled form by the
lambda's code instead of walking this big statement for a cache key at every execution (0.1-0.2
ms each time, a tenth of an org's read). Only a global, never a closure variable: a closure's
SQL elements would be walked again."""
_AGENTS = select(Agent).where(Agent.org_id.in_(bindparam("ids", expanding=True)))
_PLATFORM = (
    select(*_CONN_COLS, *_SECRET_COLS)
    .select_from(_C)
    .outerjoin(_S, _S.c.id == _C.c.secret_id)
    .where(_C.c.org_id.is_(None))
)


class OrgRowsReader:
    """Orgs' rows out of the rows of a statement made with `with_org_rows` (or `_ORGS`), the
    org's share of each row starting at column `at`; `rows` then reads what that statement
    leaves out (agents, conformance results), only when there are some."""

    def __init__(self, at: int = 0) -> None:
        self._at = at
        self._heads: dict[str, tuple[OrgHead, AISettingsRow | None, int, int]] = {}
        self._connections: dict[str, list[ConnectionRow]] = {}
        self._secrets: dict[str, SecretRow] = {}
        self._with_agents: set[str] = set()
        self._scored: dict[str, list[str]] = {}
        self._seen: set[str] = set()
        """Connection ids read: several new keys of one org in one read repeat its rows."""

    def add(self, row: Sequence[Any]) -> None:
        at = self._at
        org_id = row[at]
        if org_id is None:
            return  # the org does not exist
        ai, head = at + _AI, at + _HEAD
        conn, secret, scored = at + _CONN, at + _SECRET, at + _SCORED
        mine = self._connections.get(org_id)
        if mine is None:
            ai_row = AISettingsRow._make(row[ai:head]) if row[ai] is not None else None
            head_row = OrgHead._make(row[at:ai])
            self._heads[org_id] = (head_row, ai_row, int(row[head] or 0), int(row[head + 1] or 0))
            mine = self._connections[org_id] = []
            if row[head + 2]:
                self._with_agents.add(org_id)
        if row[conn] is None or row[conn] in self._seen:
            return
        connection = ConnectionRow._make(row[conn:secret])
        self._seen.add(connection.id)
        mine.append(connection)
        if row[scored]:
            self._scored.setdefault(org_id, []).append(connection.id)
        if row[secret] is not None:
            record = SecretRow._make(row[secret:scored])
            self._secrets[record.id] = record

    async def rows(self, conn: AsyncConnection, org_ids: Collection[str] | None = None) -> dict[str, OrgRows]:
        """The rows of those orgs read (all, or those of `org_ids`), with their agents and
        conformance results (one statement each on `conn`, only when one of them has any)."""
        ids = [o for o in self._heads if org_ids is None or o in org_ids]
        if not ids:
            return {}
        agented = [o for o in ids if o in self._with_agents]
        scored = [c for o in ids for c in self._scored.get(o, ())]
        agents: list[Agent] = []
        conformance: list[ConformanceResult] = []
        if agented or scored:
            # ORM objects, so a session, but only then: an org without either needs none.
            async with AsyncSession(bind=conn) as session:
                agents = list(await session.scalars(_AGENTS, {"ids": agented})) if agented else []
                conformance = await load_results(session, scored) if scored else []
        org_of = {c: org_id for org_id in ids for c in self._scored.get(org_id, ())}
        by_agent = _by(agents, lambda a: a.org_id)
        results = _by(conformance, lambda r: org_of.get(r.connection_id, ""))
        out: dict[str, OrgRows] = {}
        for org_id in ids:
            org, ai, version, platform_version = self._heads[org_id]
            mine = self._connections[org_id]
            secrets = {s.id: s for c in mine if c.secret_id and (s := self._secrets.get(c.secret_id))}
            out[org_id] = OrgRows(
                org,
                ai,
                version,
                platform_version,
                Keyed(mine, secrets),
                by_agent.get(org_id, []),
                results.get(org_id, []),
            )
        return out


async def read_orgs(conn: AsyncConnection, org_ids: Sequence[str]) -> dict[str, OrgRows]:
    """The rows of those orgs that exist, read by one statement, plus one for agents and one for
    conformance results only when there are any (orgs loading at the same time share them:
    `foundation.batched_reads`)."""
    ids = list(dict.fromkeys(org_ids))[:_READ_BATCH]
    reader = OrgRowsReader()
    for row in await conn.execute(_ORGS, {"ids": ids}):
        reader.add(row)
    return await reader.rows(conn)


def _by(rows: Iterable[T], key: Callable[[T], str]) -> dict[str, list[T]]:
    out: dict[str, list[T]] = {}
    for row in rows:
        out.setdefault(key(row), []).append(row)
    return out


async def read_org(conn: AsyncConnection, org_id: str) -> OrgRows | None:
    """One org's rows, or None when it does not exist."""
    return (await read_orgs(conn, [org_id])).get(org_id)


async def read_platform(conn: AsyncConnection, version: int) -> PlatformRows:
    """The platform's rows, read after its config version was seen to be `version`."""
    connections: list[ConnectionRow] = []
    secrets: dict[str, SecretRow] = {}
    for row in await conn.execute(_PLATFORM):
        connections.append(ConnectionRow._make(row[: len(_CONN_COLS)]))
        if row[len(_CONN_COLS)] is not None:
            secret = SecretRow._make(row[len(_CONN_COLS) :])
            secrets[secret.id] = secret
    ids = [c.id for c in connections]
    async with AsyncSession(bind=conn) as session:
        conformance = await load_results(session, ids) if ids else []
        return PlatformRows(version, Keyed(connections, secrets), conformance, await load_states(session))
