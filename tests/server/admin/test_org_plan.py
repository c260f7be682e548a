"""The org update route's `tier` and `byok_override` on both databases: the operator changes
them (audited, config version bumped, this process's snapshot dropped), org roles may not
(even owners and billing, who may set the budget on the same route), a tier the table does
not have is a 400 naming the tiers, and nothing changes on a refusal."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from foundation.audit import AuditEvent
from routing.config_versions import read_versions
from server.services import Services
from tests.server.access.conftest import OPERATOR, bearer, mint_token


@pytest.fixture
async def org(client: httpx.AsyncClient) -> str:
    r = await client.post("/admin/v1/orgs", json={"name": "acme", "tier": "pro"}, headers=OPERATOR)
    assert r.status_code == 201, r.text
    org_id: str = r.json()["id"]
    return org_id


async def _plan(client: httpx.AsyncClient, org: str) -> tuple[str, bool]:
    r = await client.get(f"/admin/v1/orgs/{org}/platform-connections", headers=OPERATOR)
    body = r.json()
    return body["tier"], body["byok_override"]


async def test_the_operator_changes_tier_and_override(
    client: httpx.AsyncClient, org: str, app: FastAPI
) -> None:
    services: Services = app.state.services
    await services.gateway.registry.get(org)  # a snapshot in memory, to be dropped
    assert await _plan(client, org) == ("pro", False)
    r = await client.patch(
        f"/admin/v1/orgs/{org}", json={"tier": "free", "byok_override": True}, headers=OPERATOR
    )
    assert r.status_code == 200, r.text
    assert (r.json()["tier"], r.json()["byok_override"], r.json()["monthly_budget"]) == ("free", True, None)
    assert await _plan(client, org) == ("free", True)  # this process rebuilt at once
    async with services.db.session() as s:
        events = (await s.scalars(select(AuditEvent).where(AuditEvent.target_id == org))).all()
        assert sorted(
            (e.action, e.actor, e.details) for e in events if e.action in ("org.tier", "org.byok_override")
        ) == [
            ("org.byok_override", "operator", {"byok_override": True}),
            ("org.tier", "operator", {"tier": "free", "was": "pro"}),
        ]
        version = (await read_versions(s, [org]))[org]
    # The same values again change nothing: no event, no bump.
    again = await client.patch(
        f"/admin/v1/orgs/{org}", json={"tier": "free", "byok_override": True}, headers=OPERATOR
    )
    assert again.status_code == 200
    async with services.db.session() as s:
        assert (await read_versions(s, [org]))[org] == version
    off = await client.patch(f"/admin/v1/orgs/{org}", json={"byok_override": False}, headers=OPERATOR)
    assert (off.json()["tier"], off.json()["byok_override"]) == ("free", False)


@pytest.mark.parametrize("role", ["owner", "billing", "admin", "viewer"])
async def test_org_roles_may_not_change_the_tier_or_override(
    client: httpx.AsyncClient, org: str, role: str
) -> None:
    who = bearer(await mint_token(client, org, role))
    for body in ({"tier": "enterprise"}, {"byok_override": True}, {"monthly_budget": "5", "tier": "agency"}):
        r = await client.patch(f"/admin/v1/orgs/{org}", json=body, headers=who)
        assert r.status_code == 403, r.text
        if role in ("owner", "billing"):
            assert "operator" in r.json()["error"]["message"] and "checkout" in r.json()["error"]["message"]
    assert await _plan(client, org) == ("pro", False)
    budget = (await client.get(f"/admin/v1/orgs/{org}/budget", headers=OPERATOR)).json()
    assert budget["monthly_budget"] is None  # the refused combined change set nothing
    if role in ("owner", "billing"):  # the budget alone is still theirs
        assert (
            await client.patch(f"/admin/v1/orgs/{org}", json={"monthly_budget": "5"}, headers=who)
        ).status_code == 200


@pytest.mark.parametrize(
    "body", [{"tier": "platinum"}, {"tier": None}, {"byok_override": None}, {}, {"tier": "pro", "x": 1}]
)
async def test_a_bad_change_is_a_400_that_changes_nothing(
    client: httpx.AsyncClient, org: str, body: dict[str, object]
) -> None:
    r = await client.patch(f"/admin/v1/orgs/{org}", json=body, headers=OPERATOR)
    assert r.status_code == 400, r.text
    if body == {"tier": "platinum"}:
        error = r.json()["error"]
        assert error["type"] == "unknown_tier" and error["param"] == "tier"
        assert "free, starter, pro, agency, enterprise" in error["message"]
    assert await _plan(client, org) == ("pro", False)


async def test_an_unknown_org_is_a_404(client: httpx.AsyncClient) -> None:
    assert (
        await client.patch("/admin/v1/orgs/nope", json={"tier": "pro"}, headers=OPERATOR)
    ).status_code == 404
