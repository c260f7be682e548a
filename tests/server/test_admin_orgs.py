from __future__ import annotations

import httpx
from fastapi import FastAPI

from server import accounts
from server.services import Services


async def test_admin_requires_the_token(client: httpx.AsyncClient) -> None:
    r = await client.get("/admin/v1/orgs")
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "unauthorized"
    r = await client.get("/admin/v1/orgs", headers={"authorization": "Bearer wrong"})
    assert r.status_code == 401


async def test_create_org_then_key_then_authenticate(
    client: httpx.AsyncClient, admin_headers: dict[str, str], app: FastAPI
) -> None:
    r = await client.post("/admin/v1/orgs", json={"name": "acme", "tier": "pro"}, headers=admin_headers)
    assert r.status_code == 201, r.text
    org = r.json()
    assert org["id"].startswith("org_") and org["tier"] == "pro"

    dup = await client.post("/admin/v1/orgs", json={"name": "acme"}, headers=admin_headers)
    assert dup.status_code == 409
    assert dup.json()["error"]["type"] == "conflict"

    r = await client.post(f"/admin/v1/orgs/{org['id']}/api-keys", json={"name": "ci"}, headers=admin_headers)
    assert r.status_code == 201
    issued = r.json()
    assert issued["key"].startswith("pb-") and issued["key"].startswith(issued["prefix"])

    listed = (await client.get("/admin/v1/orgs/acme/api-keys", headers=admin_headers)).json()
    assert [k["id"] for k in listed] == [issued["id"]]
    assert "key" not in listed[0]
    assert issued["key"] not in (await client.get("/admin/v1/orgs/acme/api-keys", headers=admin_headers)).text

    services: Services = app.state.services
    async with services.db.session() as s:
        principal = await accounts.authenticate_api_key(s, issued["key"])
        assert principal is not None and principal.org_id == org["id"]
        assert await accounts.authenticate_api_key(s, issued["key"][:-1] + "x") is None

    r = await client.delete(f"/admin/v1/orgs/acme/api-keys/{issued['id']}", headers=admin_headers)
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    async with services.db.session() as s:
        assert await accounts.authenticate_api_key(s, issued["key"]) is None


async def test_unknown_org_and_bad_body_give_typed_errors(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    r = await client.post("/admin/v1/orgs/nope/api-keys", json={"name": "ci"}, headers=admin_headers)
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "not_found"
    r = await client.post("/admin/v1/orgs", json={"name": "x", "tier": "platinum"}, headers=admin_headers)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "tier"
    r = await client.post(
        "/admin/v1/orgs", content=b"{not json", headers={**admin_headers, "content-type": "application/json"}
    )
    assert r.status_code == 400


async def test_an_org_name_cannot_look_like_or_be_an_org_id(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    first = (await client.post("/admin/v1/orgs", json={"name": "acme"}, headers=admin_headers)).json()
    for name in (first["id"], "org_ANYTHING", "ORG_x"):
        r = await client.post("/admin/v1/orgs", json={"name": name}, headers=admin_headers)
        assert r.status_code in (400, 409) and r.json()["error"]["param"] == "name", r.text
    listed = (await client.get("/admin/v1/orgs", headers=admin_headers)).json()
    assert [o["name"] for o in listed] == ["acme"]
