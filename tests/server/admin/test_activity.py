"""The request-log admin API: listing with filters, and the content-logging setting."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI

from foundation.db import utcnow
from server import accounts
from server.db import Database
from server.services import Services
from tests.server.activity.rows import add_rows


async def seeded(db: Database) -> tuple[str, str]:
    async with db.session() as s:
        org = await accounts.create_org(s, "Acme")
        key = await accounts.create_api_key(s, org.id, name="ci")
    now = utcnow()
    route = {"intent": "chat", "source": "org:chat", "served": None, "billing_source": None, "attempts": []}
    await add_rows(
        db,
        org.id,
        {"api_key_id": key.info.id, "model": "default", "connection": "openai:main"},
        at=now - timedelta(minutes=2),
    )
    await add_rows(
        db,
        org.id,
        {
            "api_key_id": key.info.id,
            "model": "default",
            "status": 502,
            "outcome": "error",
            "error_type": "upstream_failed",
            "route": route,
        },
        at=now - timedelta(minutes=1),
    )
    await add_rows(db, org.id, {"api_key_id": key.info.id}, at=now - timedelta(days=3))
    return org.id, key.info.id


async def test_requests_newest_first_with_filters(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    org_id, key_id = await seeded(db)
    url = f"/admin/v1/orgs/{org_id}/requests"
    r = await client.get(url, headers=admin_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["org_id"] == org_id
    assert [(x["status"], x["key_name"], x["api_key_id"]) for x in body["requests"]] == [
        (502, "ci", key_id),
        (200, "ci", key_id),
    ]
    failed = body["requests"][0]
    assert (failed["outcome"], failed["error_type"], failed["route"]["source"], failed["content"]) == (
        "error",
        "upstream_failed",
        "org:chat",
        None,
    )
    by_name = await client.get(
        url, params={"status": "error", "key": "ci", "model": "default"}, headers=admin_headers
    )
    assert [x["status"] for x in by_name.json()["requests"]] == [502]
    wide = await client.get(url, params={"since": "7d", "limit": 1}, headers=admin_headers)
    assert [x["status"] for x in wide.json()["requests"]] == [502]
    assert len((await client.get(url, params={"since": "7d"}, headers=admin_headers)).json()["requests"]) == 3
    by_org_name = await client.get("/admin/v1/orgs/Acme/requests", headers=admin_headers)
    assert len(by_org_name.json()["requests"]) == 2


async def test_bad_filters_are_400_and_an_unknown_org_404(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    org_id, _ = await seeded(db)
    url = f"/admin/v1/orgs/{org_id}/requests"
    for params in (
        {"status": "broken"},
        {"limit": "1001"},
        {"limit": "0"},
        {"since": "yesterday"},
        {"since": "99999999999d"},
    ):
        r = await client.get(url, params=params, headers=admin_headers)
        assert r.status_code == 400, (params, r.text)
    assert (await client.get("/admin/v1/orgs/nope/requests", headers=admin_headers)).status_code == 404
    assert (await client.get(url)).status_code == 401


async def test_content_logging_setting_reaches_the_request_path(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    org_id, _ = await seeded(db)
    services: Services = app.state.services
    registry = services.gateway.registry
    url = f"/admin/v1/orgs/{org_id}/request-log/settings"
    got = await client.get(url, headers=admin_headers)
    assert got.json() == {"org_id": org_id, "content_logging": False, "retention_days": 30}
    assert (await registry.get(org_id)).content_logging is False
    put = await client.put(url, json={"content_logging": True}, headers=admin_headers)
    assert put.status_code == 200 and put.json()["content_logging"] is True
    assert registry.cached(org_id) is None  # dropped in this process; other processes see the version bump
    assert (await registry.get(org_id)).content_logging is True
    assert services.gateway.request_log.content_logging(org_id) is True
    assert (await client.get(url, headers=admin_headers)).json()["content_logging"] is True
    for body in ({}, {"content_logging": "sometimes"}, {"content_logging": True, "extra": 1}):
        assert (await client.put(url, json=body, headers=admin_headers)).status_code == 400
