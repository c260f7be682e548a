"""Configuration versions and rollback in the routing package, on both backends.

What a version holds (never a secret), that a change touching nothing versioned records none,
and what a rollback restores, recreates and refuses to bring back.
"""

from __future__ import annotations

from sqlalchemy import select

from foundation.audit import Acting, acting
from routing import config_history, flag_store
from routing.agents import Agents
from routing.config_rollback import rollback
from routing.config_versions import bump
from routing.flag_history import flag_changes_for_org, org_timeline
from routing.flags import FlagState
from routing.platform import PLATFORM_SCOPE
from routing.tables import Connection
from server import accounts
from server.db import Database


def test_changes_are_described_per_field_and_per_item() -> None:
    before = {
        "routing": {"chains": {"chat": ["a/x"]}, "default_model": None},
        "connections": [{"id": "c1", "profile": "openai:main", "status": "active", "position": 0}],
    }
    after = {
        "routing": {"chains": {"chat": ["b/y"]}, "default_model": None},
        "connections": [
            {"id": "c1", "profile": "openai:main", "status": "disabled", "position": 0},
            {"id": "c2", "profile": "openai:spare", "status": "active", "position": 1},
        ],
    }
    assert config_history.describe_changes(before, after) == [
        "connections: openai:main status 'active' -> 'disabled'",
        "connections: openai:spare added",
        "routing.chains: {'chat': ['a/x']} -> {'chat': ['b/y']}",
    ]
    assert config_history.kind_of(before, after) == "connections,routing"
    assert config_history.describe_changes(None, after) == ["first recorded version"]


async def test_versions_hold_no_secret_and_only_real_changes_count(db: Database) -> None:
    async with db.session() as s:
        org = await accounts.create_org(s, "acme")
        s.add(
            Connection(
                id="conn_a",
                org_id=org.id,
                provider="openai",
                name="main",
                credential_kind="api_key",
                credential_source="vault",
                env_reference="SECRET_ENV_NAME",
                key_fingerprint="fp-CANARY",
            )
        )
        with acting(Acting(actor="alice")):
            await bump(s, org.id)
            await bump(s, org.id)  # nothing changed since: no second version
    async with db.session() as s:
        rows = await config_history.history(s, org.id)
    assert [(r.actor, r.kind) for r in rows] == [("alice", "initial")]
    snapshot = rows[0].snapshot
    assert snapshot["connections"] == [
        {"id": "conn_a", "profile": "openai:main", "status": "active", "position": 0}
    ]
    assert "CANARY" not in repr(snapshot) and "SECRET_ENV_NAME" not in repr(snapshot)


async def test_rollback_recreates_an_agent_and_never_a_deleted_or_revoked_connection(db: Database) -> None:
    agents = Agents()
    async with db.session() as s:
        org = await accounts.create_org(s, "acme")
        for cid, name in (("conn_a", "main"), ("conn_b", "spare")):
            s.add(
                Connection(
                    id=cid,
                    org_id=org.id,
                    provider="openai",
                    name=name,
                    credential_kind="api_key",
                    credential_source="vault",
                )
            )
        await agents.create(s, org.id, "support", chains={"chat": ["openai/gpt-4o"]})
        version = (await config_history.latest(s, org.id)).version  # type: ignore[union-attr]
    async with db.session() as s:
        await agents.delete(s, org.id, "support")
        await agents.create(s, org.id, "sales")
        rows = {r.id: r for r in await s.scalars(select(Connection).where(Connection.org_id == org.id))}
        rows["conn_a"].status = "revoked"
        await s.delete(rows["conn_b"])
        s.add(
            Connection(
                id="conn_c",
                org_id=org.id,
                provider="mistral",
                name="default",
                credential_kind="api_key",
                credential_source="vault",
            )
        )
        await bump(s, org.id)
    async with db.session() as s:
        result = await rollback(s, org.id, version)
    assert result.new_version > version
    assert sorted(result.not_restored) == [
        "agent sales: created after this version; kept (delete it with `patchbay agent delete`)",
        "connection mistral:default: added after this version; kept (disable or delete it if unwanted)",
        "connection openai:main: revoked since; it stays revoked (add a new key to use it again)",
        "connection openai:spare: deleted since; a rollback never restores a key",
    ]
    async with db.session() as s:
        assert [a.name for a in await agents.list_all(s, org.id)] == ["sales", "support"]
        support = await agents.get(s, org.id, "support")
        assert support.chains == {"chat": ["openai/gpt-4o"]}
        statuses = {c.id: c.status for c in await s.scalars(select(Connection))}
        assert statuses == {"conn_a": "revoked", "conn_c": "active"}
        latest = await config_history.latest(s, org.id)
        assert latest is not None and latest.kind == "rollback"


def test_a_platform_flag_version_is_described_for_each_org_it_changes() -> None:
    canary = {"flags": {"byok": {"percent": 0, "canary": ["org_a"], "killed": False}}}
    killed = {"flags": {"byok": {"percent": 0, "canary": ["org_a"], "killed": True}}}
    assert flag_changes_for_org(None, canary, "org_a") == []
    assert flag_changes_for_org(None, canary, "org_b") == ["flag byok: off for this org (rollout at 0%)"]
    assert flag_changes_for_org(canary, killed, "org_a") == ["flag byok: off for this org (kill switch on)"]
    assert flag_changes_for_org(canary, killed, "org_b") == []
    assert flag_changes_for_org(killed, {"flags": {}}, "org_b") == [
        "flag byok: on for this org (its default)"
    ]


async def test_flag_changes_are_platform_versions_shown_to_the_orgs_they_change_and_rolled_back(
    db: Database,
) -> None:
    async with db.session() as s:
        a = await accounts.create_org(s, "acme")
        b = await accounts.create_org(s, "globex")
        with acting(Acting(actor="ops")):
            await flag_store.set_percent(s, "byok", 0, actor="ops")
    async with db.session() as s:
        before_canary = await config_history.latest(s, PLATFORM_SCOPE)
        with acting(Acting(actor="ops")):
            await flag_store.set_canary(s, "byok", add=[a.id], remove=[], actor="ops")
    async with db.session() as s:
        platform = await config_history.history(s, PLATFORM_SCOPE)
        timeline_a = await org_timeline(s, a.id)
        timeline_b = await org_timeline(s, b.id)
    assert [(r.kind, r.actor) for r in platform] == [("flags", "ops"), ("flags", "ops"), ("initial", "ops")]
    assert platform[2].snapshot == {
        "flags": {}
    }  # the state before the first change: every flag at its default
    assert [(e.scope, e.changes) for e in timeline_a] == [
        ("platform", ["flag byok: on for this org (canary org)"]),
        ("platform", ["flag byok: off for this org (rollout at 0%)"]),
    ]
    assert [(e.scope, e.changes) for e in timeline_b] == [
        ("platform", ["flag byok: off for this org (rollout at 0%)"])
    ]

    assert before_canary is not None
    async with db.session() as s:
        result = await rollback(s, PLATFORM_SCOPE, before_canary.version)
    assert result.not_restored == [] and "flag byok" in result.restored
    async with db.session() as s:
        assert await flag_store.load_states(s) == [FlagState("byok", percent=0, canary=frozenset())]
        latest = await config_history.latest(s, PLATFORM_SCOPE)
        assert latest is not None and latest.kind == "rollback"
        assert (await org_timeline(s, a.id))[0].changes == ["flag byok: off for this org (rollout at 0%)"]
        assert await config_history.history(s, a.id) == []  # an org's own versions never hold flags
    async with db.session() as s:
        await rollback(s, PLATFORM_SCOPE, platform[2].version)
    async with db.session() as s:
        assert await flag_store.load_states(s) == []
