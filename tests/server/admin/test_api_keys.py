"""The admin API's server API keys (server/admin/orgs.py): scope at creation, typed refusals,
one key by id, status, audit rows that never hold the key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from foundation.audit import AuditEvent
from server import accounts
from server.services import Services
from server.tables import ApiKey

Headers = dict[str, str]


@pytest.fixture
async def org(client: httpx.AsyncClient, admin_headers: Headers, app: FastAPI) -> str:
    created = await client.post("/admin/v1/orgs", json={"name": "acme"}, headers=admin_headers)
    org_id: str = created.json()["id"]
    services: Services = app.state.services
    async with services.db.session() as s:
        await services.agents().create(s, org_id, "support", chains={"chat": ["openai/gpt-4o-mini"]})
    return org_id


async def _create(client: httpx.AsyncClient, headers: Headers, org: str, **body: Any) -> httpx.Response:
    return await client.post(f"/admin/v1/orgs/{org}/api-keys", json=body, headers=headers)


async def test_a_key_is_created_with_its_whole_scope_and_read_back(
    client: httpx.AsyncClient, admin_headers: Headers, org: str
) -> None:
    r = await _create(
        client,
        admin_headers,
        org,
        name="  support bot ",
        agent="support",
        models=["openai/gpt-4o-mini", "sonnet", "OPENAI/gpt-4o-mini"],
        expires="30d",
    )
    assert r.status_code == 201, r.text
    issued = r.json()
    assert issued["key"].startswith(issued["prefix"])
    assert issued["name"] == "support bot" and issued["agent"] == "support"
    assert issued["models"] == ["openai/gpt-4o-mini", "sonnet"]
    created = datetime.fromisoformat(issued["created_at"])
    assert datetime.fromisoformat(issued["expires_at"]) - created == timedelta(days=30)
    assert issued["last_used_at"] is None and issued["revoked_at"] is None
    assert issued["status"] == "active"

    one = await client.get(f"/admin/v1/orgs/{org}/api-keys/{issued['id']}", headers=admin_headers)
    assert one.status_code == 200
    assert one.json() == {k: v for k, v in issued.items() if k != "key"}
    listed = (await client.get(f"/admin/v1/orgs/{org}/api-keys", headers=admin_headers)).json()
    assert listed == [one.json()]

    plain = (await _create(client, admin_headers, org, name="plain")).json()
    assert (plain["agent"], plain["models"], plain["expires_at"]) == (None, None, None)
    iso = await _create(client, admin_headers, org, name="dated", expires="2999-01-01T00:00:00Z")
    assert iso.status_code == 201 and iso.json()["expires_at"].startswith("2999-01-01T00:00:00")


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"name": ""}, 400, "name"),
        ({"name": "   "}, 400, "name"),
        ({"name": "x" * 129}, 400, "name"),
        ({"name": "ok", "expires": "soon"}, 400, "expires"),
        ({"name": "ok", "expires": "30y"}, 400, "expires"),
        ({"name": "ok", "expires": "2001-01-01T00:00:00Z"}, 400, "expires"),
        ({"name": "ok", "expires": "99999999999d"}, 400, "expires"),
        ({"name": "ok", "models": ["m"] * 101}, 400, "models"),
        ({"name": "ok", "models": ["m" * 201]}, 400, "models"),
        ({"name": "ok", "models": [""]}, 400, "models"),
    ],
)
async def test_bad_scopes_are_typed_400s(
    client: httpx.AsyncClient, admin_headers: Headers, org: str, body: dict[str, Any], status: int, param: str
) -> None:
    r = await _create(client, admin_headers, org, **body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param


async def test_a_name_is_required_and_unique_among_live_keys(
    client: httpx.AsyncClient, admin_headers: Headers, org: str
) -> None:
    missing = await client.post(f"/admin/v1/orgs/{org}/api-keys", json={}, headers=admin_headers)
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "name"
    first = (await _create(client, admin_headers, org, name="ci")).json()
    dup = await _create(client, admin_headers, org, name="ci")
    assert dup.status_code == 409
    assert dup.json()["error"] == {
        "type": "conflict",
        "message": "org 'acme' already has a key named 'ci'; choose another name",
        "param": "name",
        "request_id": dup.headers["x-request-id"],
    }
    revoked = await client.delete(f"/admin/v1/orgs/{org}/api-keys/{first['id']}", headers=admin_headers)
    assert revoked.json()["status"] == "revoked"
    assert (await _create(client, admin_headers, org, name="ci")).status_code == 201
    other = (await client.post("/admin/v1/orgs", json={"name": "globex"}, headers=admin_headers)).json()
    assert (await _create(client, admin_headers, other["id"], name="ci")).status_code == 201


async def test_one_key_is_found_only_in_its_own_org(
    client: httpx.AsyncClient, admin_headers: Headers, org: str
) -> None:
    key = (await _create(client, admin_headers, org, name="ci")).json()
    other = (await client.post("/admin/v1/orgs", json={"name": "globex"}, headers=admin_headers)).json()
    for path in (
        f"/admin/v1/orgs/{other['id']}/api-keys/{key['id']}",
        f"/admin/v1/orgs/{org}/api-keys/key_nope",
    ):
        r = await client.get(path, headers=admin_headers)
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"


async def test_status_follows_the_clock_and_unnamed_keys_list_as_their_prefix(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: Headers, org: str
) -> None:
    key = (await _create(client, admin_headers, org, name="short", expires="1h")).json()
    services: Services = app.state.services
    created = datetime.fromisoformat(key["created_at"])
    async with services.db.session() as s:
        s.add(ApiKey(org_id=org, name=None, prefix="pb-legacy0000", key_hash="0" * 64))
    async with services.db.session() as s:
        before = await accounts.list_api_keys(s, org, now=created + timedelta(minutes=59))
        after = await accounts.list_api_keys(s, org, now=created + timedelta(hours=1))
    assert [(k.name, k.status) for k in before] == [("short", "active"), ("pb-legacy0000", "active")]
    assert [(k.name, k.status) for k in after] == [("short", "expired"), ("pb-legacy0000", "active")]


async def test_audit_rows_carry_the_scope_never_the_key(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: Headers, org: str
) -> None:
    key = (await _create(client, admin_headers, org, name="ci", models=["sonnet"], expires="1d")).json()
    await client.delete(f"/admin/v1/orgs/{org}/api-keys/{key['id']}", headers=admin_headers)
    services: Services = app.state.services
    async with services.db.session() as s:
        rows = (
            await s.execute(
                select(AuditEvent.action, AuditEvent.details).where(AuditEvent.target_id == key["id"])
            )
        ).all()
    details: dict[str, Any] = {action: detail for action, detail in rows}
    assert details["apikey.create"] == {
        "prefix": key["prefix"],
        "name": "ci",
        "agent": None,
        "models": ["sonnet"],
        "expires_at": datetime.fromisoformat(key["expires_at"]).astimezone(UTC).isoformat(),
    }
    assert details["apikey.revoke"] == {"prefix": key["prefix"], "name": "ci"}
    assert key["key"] not in str(rows)
