"""Org admin tokens: scoped to one org, limited by role, refused at once when revoked or expired."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import httpx
from click.testing import CliRunner
from fastapi import FastAPI
from sqlalchemy import update

from foundation.db import utcnow
from server.access.tables import OrgAdminToken
from server.app import create_app
from server.cli import cli
from server.db import Database
from server.services import Services
from server.settings import Settings
from tests.server.access.conftest import OPERATOR, Orgs, bearer, mint_token


async def test_an_org_admin_token_manages_its_own_org_and_cannot_detect_another(
    client: httpx.AsyncClient, orgs: Orgs
) -> None:
    admin = bearer(await mint_token(client, orgs.a["id"], "admin"))
    own = await client.get(f"/admin/v1/orgs/{orgs.a['id']}/connections", headers=admin)
    assert own.status_code == 200 and [c["profile_id"] for c in own.json()] == [orgs.a["connection"]]
    by_name = await client.get("/admin/v1/orgs/alpha/connections", headers=admin)
    assert by_name.status_code == 200
    made = await client.post(
        f"/admin/v1/orgs/{orgs.a['id']}/connections",
        json={"provider": "anthropic", "name": "second", "key": "sk-ant-0123456789abcdef"},
        headers=admin,
    )
    assert made.status_code == 201, made.text

    theirs = await client.get(f"/admin/v1/orgs/{orgs.b['id']}/connections", headers=admin)
    nobody = await client.get("/admin/v1/orgs/org_doesnotexist0000/connections", headers=admin)
    assert theirs.status_code == nobody.status_code == 404
    assert theirs.json()["error"]["message"].replace(orgs.b["id"], "X") == nobody.json()["error"][
        "message"
    ].replace("org_doesnotexist0000", "X")
    by_their_name = await client.get("/admin/v1/orgs/beta/connections", headers=admin)
    assert by_their_name.status_code == 404
    # Listing orgs shows only its own.
    listed = await client.get("/admin/v1/orgs", headers=admin)
    assert [o["id"] for o in listed.json()] == [orgs.a["id"]]
    # It cannot create orgs or mint admin tokens (owner's job).
    assert (await client.post("/admin/v1/orgs", json={"name": "gamma"}, headers=admin)).status_code == 403
    assert (
        await client.post(
            f"/admin/v1/orgs/{orgs.a['id']}/admin-tokens", json={"role": "owner"}, headers=admin
        )
    ).status_code == 403


async def test_a_viewer_reads_and_changes_nothing(client: httpx.AsyncClient, orgs: Orgs) -> None:
    viewer = bearer(await mint_token(client, orgs.a["id"], "viewer"))
    org = f"/admin/v1/orgs/{orgs.a['id']}"
    for path in ("/connections", "/agents", "/routing", "/api-keys", "/usage", "/audit", "/members"):
        assert (await client.get(org + path, headers=viewer)).status_code == 200, path
    attempts = [
        ("POST", "/connections", {"provider": "openai", "name": "x", "key": "sk-0123456789abcdef"}),
        ("PATCH", f"/connections/{orgs.a['connection']}", {"enabled": False}),
        ("DELETE", f"/connections/{orgs.a['connection']}", None),
        ("POST", "/agents", {"name": "another"}),
        ("DELETE", "/agents/bot", None),
        ("PUT", "/routing", {"chains": {}}),
        ("POST", "/api-keys", {"name": "k"}),
        ("POST", "/invites", {"email": "a@b.example", "role": "owner"}),
    ]
    for method, path, body in attempts:
        r = await client.request(method, org + path, json=body, headers=viewer)
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["error"]["type"] == "forbidden" and "viewer" in r.json()["error"]["message"]
    still = await client.get(org + "/connections", headers=OPERATOR)
    assert [c["status"] for c in still.json()] == ["active"]


async def test_revoked_and_expired_tokens_are_refused_at_once_by_every_process(
    client: httpx.AsyncClient, orgs: Orgs, settings: Settings, db: Database
) -> None:
    owner = await mint_token(client, orgs.a["id"], "owner", name="deploy bot", expires="30d")
    headers = bearer(owner)
    # A second app on the same database stands for another replica.
    other_app: FastAPI = create_app(settings, services=Services.build(settings, db))
    transport = httpx.ASGITransport(app=other_app)
    async with (
        other_app.router.lifespan_context(other_app),
        httpx.AsyncClient(transport=transport, base_url="http://replica.test") as other,
    ):
        assert (await other.get(f"/admin/v1/orgs/{orgs.a['id']}/agents", headers=headers)).status_code == 200
        listed = (await client.get(f"/admin/v1/orgs/{orgs.a['id']}/admin-tokens", headers=headers)).json()
        assert [(t["name"], t["status"], t["role"]) for t in listed] == [("deploy bot", "active", "owner")]
        assert "token" not in listed[0] and listed[0]["last_used_at"] is not None
        revoked = await client.delete(
            f"/admin/v1/orgs/{orgs.a['id']}/admin-tokens/{owner['id']}", headers=OPERATOR
        )
        assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
        refused = await other.get(f"/admin/v1/orgs/{orgs.a['id']}/agents", headers=headers)
        assert refused.status_code == 401

        viewer = await mint_token(client, orgs.a["id"], "viewer", expires="1h")
        assert (
            await other.get(f"/admin/v1/orgs/{orgs.a['id']}/agents", headers=bearer(viewer))
        ).status_code == 200
        async with db.session() as s:
            await s.execute(
                update(OrgAdminToken)
                .where(OrgAdminToken.id == viewer["id"])
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
        assert (
            await other.get(f"/admin/v1/orgs/{orgs.a['id']}/agents", headers=bearer(viewer))
        ).status_code == 401
        listed = (await client.get(f"/admin/v1/orgs/{orgs.a['id']}/admin-tokens", headers=OPERATOR)).json()
        assert {t["id"]: t["status"] for t in listed} == {owner["id"]: "revoked", viewer["id"]: "expired"}


async def test_bad_token_requests_are_typed_errors(client: httpx.AsyncClient, orgs: Orgs) -> None:
    org = f"/admin/v1/orgs/{orgs.a['id']}/admin-tokens"
    assert (await client.post(org, json={"role": "emperor"}, headers=OPERATOR)).status_code == 400
    r = await client.post(org, json={"role": "viewer", "expires": "yesterday"}, headers=OPERATOR)
    assert r.status_code == 400 and r.json()["error"]["param"] == "expires"
    r = await client.post(org, json={"role": "viewer", "expires": "2001-01-01T00:00:00Z"}, headers=OPERATOR)
    assert r.status_code == 400 and "future" in r.json()["error"]["message"]
    r = await client.delete(org + "/tok_nope", headers=OPERATOR)
    assert r.status_code == 404


def test_the_cli_creates_lists_and_revokes_org_tokens(
    tmp_path: Path, db_url: str, monkeypatch: object
) -> None:
    import pytest

    mp: pytest.MonkeyPatch = monkeypatch  # type: ignore[assignment]
    mp.setenv("PATCHBAY_DATABASE_URL", db_url)
    mp.setenv("PATCHBAY_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(cli, ["org", "create", "acme"]).exit_code == 0
    made = runner.invoke(
        cli, ["admin", "token", "create", "--org", "acme", "--role", "viewer", "--expires", "30d", "--json"]
    )
    assert made.exit_code == 0, made.output
    issued = json.loads(made.output)
    assert issued["token"].startswith("pbt-") and issued["role"] == "viewer" and issued["status"] == "active"
    listed = json.loads(runner.invoke(cli, ["admin", "token", "list", "--org", "acme", "--json"]).output)
    assert [t["id"] for t in listed] == [issued["id"]] and "token" not in listed[0]
    assert issued["token"] not in runner.invoke(cli, ["admin", "token", "list", "--org", "acme"]).output
    bad = runner.invoke(cli, ["admin", "token", "create", "--org", "acme", "--role", "god", "--json"])
    assert bad.exit_code == 2
    missing = runner.invoke(cli, ["admin", "token", "revoke", "--org", "acme", "tok_nope", "--json"])
    assert missing.exit_code == 1 and json.loads(missing.output)["error"]["type"] == "not_found"
    revoked = runner.invoke(cli, ["admin", "token", "revoke", "--org", "acme", issued["id"], "--json"])
    assert revoked.exit_code == 0 and json.loads(revoked.output)["status"] == "revoked"
    audit = json.loads(runner.invoke(cli, ["audit", "--org", "acme", "--json"]).output)
    assert [e["action"] for e in audit][:2] == ["admin_token.revoke", "admin_token.create"]
    assert {e["credential"] for e in audit} == {"cli"}
