"""The registry's read of orgs: each org gets its own rows out of the shared statement, and an org
without agents or conformance results is read by one statement."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from foundation.audit import MemoryAudit
from providers.vault.keyring import Keyring, StaticKeys, new_master_key
from providers.vault.secret import Secret
from providers.vault.store import Vault
from routing.agents import Agents
from routing.config_versions import bump
from routing.conformance.scoring import Score
from routing.conformance.store import save_scores
from routing.connections import Connections
from routing.guard import GuardPolicy
from routing.org_rows import read_orgs
from routing.platform import PLATFORM_SCOPE
from server import accounts
from server.db import Database


@pytest.fixture
def vault(db: Database) -> Vault:
    return Vault(StaticKeys(Keyring((new_master_key("v1"),))), db.sessions, MemoryAudit())


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)


async def test_each_org_gets_its_own_rows(db: Database, vault: Vault) -> None:
    connections = Connections(vault, GuardPolicy())
    async with db.session() as s:
        full = (await accounts.create_org(s, "Full")).id
        plain = (await accounts.create_org(s, "Plain")).id
        bare = (await accounts.create_org(s, "Bare")).id
        scored = await connections.create(s, full, provider="openai", name="main", key=Secret("sk-full-main"))
        await connections.create(s, full, provider="anthropic", name="main", key=Secret("sk-full-anth"))
        await connections.create(s, plain, provider="openai", name="main", key=Secret("sk-plain-main"))
        await Agents().create(s, full, "support", default_model="openai/gpt-4o-mini")
        await Agents().set_org_routing(s, plain, chains={"chat": ["openai/gpt-4o-mini"]})
        await save_scores(s, scored.id, full, ("basic", 1, "run_1"), [Score("gpt-4o-mini", "text", 4, 3)])
        await bump(s, PLATFORM_SCOPE)
    async with db.engine.connect() as conn:
        rows = await read_orgs(conn, [full, plain, bare, "org_missing", full])
    assert set(rows) == {full, plain, bare}
    f, p, b = rows[full], rows[plain], rows[bare]
    assert sorted(c.profile_id for c in f.own.connections) == ["anthropic:main", "openai:main"]
    assert {c.org_id for c in f.own.connections} == {full}
    assert set(f.own.secrets) == {c.secret_id for c in f.own.connections}
    assert [a.name for a in f.agents] == ["support"]
    assert [(r.connection_id, r.passed) for r in f.conformance] == [(scored.id, 3)]
    assert [c.profile_id for c in p.own.connections] == ["openai:main"] and not p.agents and not p.conformance
    assert p.ai is not None and p.ai.routing == {"chat": ["openai/gpt-4o-mini"]}
    assert b.own.connections == [] and b.own.secrets == {} and not b.agents
    assert f.version > 0 and p.version > 0 and b.version == 0
    assert {r.platform_version for r in rows.values()} == {1}


async def test_an_org_without_agents_or_results_is_one_statement(db: Database, vault: Vault) -> None:
    async with db.session() as s:
        org_id = (await accounts.create_org(s, "Plain")).id
        await Connections(vault, GuardPolicy()).create(
            s, org_id, provider="openai", name="main", key=Secret("sk-plain-main")
        )
        agent_org = (await accounts.create_org(s, "Agents")).id
        await Agents().create(s, agent_org, "support")
    async with db.engine.connect() as conn:
        with statements(db) as seen:
            rows = await read_orgs(conn, [org_id])
        selects = [q for q in seen if q.lstrip().upper().startswith("SELECT")]
        assert len(selects) == 1 and rows[org_id].own.connections
        with statements(db) as seen:
            rows = await read_orgs(conn, [agent_org])
        selects = [q for q in seen if q.lstrip().upper().startswith("SELECT")]
        assert len(selects) == 2 and [a.name for a in rows[agent_org].agents] == ["support"]


async def test_keys_and_their_orgs_in_one_statement(db: Database, vault: Vault) -> None:
    """Two new keys of one org read together: the org's connections once each."""
    async with db.session() as s:
        org_id = (await accounts.create_org(s, "Two keys")).id
        for name in ("main", "second"):
            await Connections(vault, GuardPolicy()).create(
                s, org_id, provider="openai", name=name, key=Secret(f"sk-{name}")
            )
        bare = (await accounts.create_org(s, "Bare")).id
        keys = [(await accounts.create_api_key(s, o, name=n)).key for o, n in ((org_id, "a"), (org_id, "b"))]
        keys.append((await accounts.create_api_key(s, bare, name="c")).key)
    async with db.engine.connect() as conn:
        with statements(db) as seen:
            found, read = await accounts.authenticate_api_keys_with_orgs(conn, [*keys, "pb-unknown"])
            rows = await read.rows(conn)
        assert len(seen) == 1 and set(found) == set(keys)
    assert sorted(c.name for c in rows[org_id].own.connections) == ["main", "second"]
    assert set(rows[org_id].own.secrets) == {c.secret_id for c in rows[org_id].own.connections}
    assert rows[bare].own.connections == [] and rows[org_id].version > 0
    assert set(rows) == {org_id, bare}
