"""Feature flags through the admin API (operator only) and `patchbay flags` (exit codes,
`--json`), on both databases; a change reaches this process's snapshots at once."""

from __future__ import annotations

import json

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from foundation.audit import AuditEvent
from server.db import Database
from tests.server.access.conftest import OPERATOR, Orgs, bearer, mint_token
from tests.server.test_cli import run_cli

F = "/admin/v1/flags"


async def test_the_operator_rolls_a_flag_out_and_the_snapshot_follows(
    app: FastAPI, client: httpx.AsyncClient, orgs: Orgs
) -> None:
    listed = await client.get(F, headers=OPERATOR)
    assert listed.status_code == 200, listed.text
    assert [f["name"] for f in listed.json()] == ["byok", "private_endpoints", "voice", "billing_enforcement"]
    assert all(f["default"] is True and f["percent"] is None for f in listed.json())

    registry = app.state.services.gateway.registry
    assert (await registry.get(orgs.a["id"])).routing.flag("byok")
    assert (await client.put(f"{F}/byok", json={"percent": 0}, headers=OPERATOR)).status_code == 200
    canary = await client.post(f"{F}/byok/canary", json={"add": [orgs.a["name"]]}, headers=OPERATOR)
    assert canary.json()["canary"] == [orgs.a["id"]] and canary.json()["updated_by"] == "operator"
    assert (await registry.get(orgs.a["id"])).routing.flag("byok")
    assert not (await registry.get(orgs.b["id"])).routing.flag("byok")

    killed = await client.post(f"{F}/byok/kill", json={"killed": True}, headers=OPERATOR)
    assert killed.json()["killed"] is True
    assert not (await registry.get(orgs.a["id"])).routing.flag("byok")

    assert (await client.put(f"{F}/nope", json={"percent": 1}, headers=OPERATOR)).status_code == 404
    assert (await client.put(f"{F}/byok", json={"percent": 101}, headers=OPERATOR)).status_code == 400
    unknown_org = await client.post(f"{F}/byok/canary", json={"add": ["ghost"]}, headers=OPERATOR)
    assert unknown_org.status_code == 404


async def test_a_platform_rollback_restores_the_flags_and_the_snapshot_follows(
    app: FastAPI, client: httpx.AsyncClient, orgs: Orgs
) -> None:
    registry = app.state.services.gateway.registry
    assert (await client.put(f"{F}/byok", json={"percent": 0}, headers=OPERATOR)).status_code == 200
    assert not (await registry.get(orgs.a["id"])).routing.flag("byok")

    history = await client.get("/admin/v1/platform/config/history", headers=OPERATOR)
    assert history.status_code == 200, history.text
    assert [(v["scope"], v["kind"], v["actor"]) for v in history.json()] == [
        ("platform", "flags", "operator"),
        ("platform", "initial", "operator"),
    ]
    org_view = (await client.get(f"/admin/v1/orgs/{orgs.a['id']}/config/history", headers=OPERATOR)).json()
    assert [v["changes"] for v in org_view if v["scope"] == "platform"] == [
        ["flag byok: off for this org (rollout at 0%)"]
    ]

    initial = history.json()[-1]["version"]
    back = await client.post(
        "/admin/v1/platform/config/rollback", json={"to_version": initial}, headers=OPERATOR
    )
    assert back.status_code == 200, back.text
    assert "flag byok: default" in back.json()["restored"]
    assert (await registry.get(orgs.a["id"])).routing.flag("byok")
    listed = {f["name"]: f for f in (await client.get(F, headers=OPERATOR)).json()}
    assert listed["byok"]["percent"] is None


async def test_org_members_cannot_read_or_change_flags(client: httpx.AsyncClient, orgs: Orgs) -> None:
    owner = bearer(await mint_token(client, orgs.a["id"], "owner"))
    for method, path in [
        ("GET", F),
        ("PUT", f"{F}/byok"),
        ("POST", f"{F}/byok/canary"),
        ("POST", f"{F}/byok/kill"),
        ("GET", "/admin/v1/platform/config/history"),
        ("POST", "/admin/v1/platform/config/rollback"),
    ]:
        refused = await client.request(method, path, json={}, headers=owner)
        assert refused.status_code == 403, (method, path, refused.text)


async def test_the_cli_lists_sets_canaries_and_kills(db: Database, db_url: str) -> None:
    created = await run_cli(db_url, "org", "create", "acme", "--json")
    org_id = json.loads(created.output)["id"]

    set_ = await run_cli(db_url, "flags", "set", "voice", "--percent", "0", "--json")
    assert set_.exit_code == 0, set_.output
    assert json.loads(set_.output)["percent"] == 0
    canary = await run_cli(db_url, "flags", "canary", "voice", "--add", "acme", "--json")
    assert json.loads(canary.output)["canary"] == [org_id]
    listed = await run_cli(db_url, "flags", "list", "--org", "acme", "--json")
    voice = next(f for f in json.loads(listed.output)["flags"] if f["name"] == "voice")
    assert voice["on_for_org"] is True
    async with db.session() as s:
        audited = (await s.scalars(select(AuditEvent).where(AuditEvent.action == "flag.update"))).all()
    assert [(e.target_id, e.actor, e.details) for e in audited] == [
        ("voice", "cli", {"percent": 0}),
        ("voice", "cli", {"canary_added": [org_id], "canary_removed": []}),
    ]
    killed = await run_cli(db_url, "flags", "kill", "voice")
    assert killed.exit_code == 0 and "KILLED" in killed.output
    listed = await run_cli(db_url, "flags", "list", "--org", "acme", "--json")
    assert next(f for f in json.loads(listed.output)["flags"] if f["name"] == "voice")["on_for_org"] is False
    undone = await run_cli(db_url, "flags", "kill", "voice", "--undo", "--json")
    assert json.loads(undone.output)["killed"] is False

    assert (await run_cli(db_url, "flags", "set", "nope", "--percent", "1")).exit_code == 2
    assert (await run_cli(db_url, "flags", "set", "voice", "--percent", "150")).exit_code == 2
    assert (await run_cli(db_url, "flags", "canary", "voice")).exit_code == 2
    missing = await run_cli(db_url, "flags", "canary", "voice", "--add", "ghost", "--json")
    assert missing.exit_code == 1 and "no org" in missing.output
    assert (await run_cli(db_url, "flags", "--help")).exit_code == 0
