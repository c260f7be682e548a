"""The admin API's budget routes on both databases: the org update route, the budget read, a
key's spend limit (at creation and after), exact amounts only, and who may change them."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from billing.spend import SpendLimitExceededError
from server.services import Services
from tests.server.access.conftest import OPERATOR, bearer, mint_token


@pytest.fixture
async def org(client: httpx.AsyncClient) -> str:
    r = await client.post("/admin/v1/orgs", json={"name": "acme"}, headers=OPERATOR)
    assert r.status_code == 201, r.text
    org_id: str = r.json()["id"]
    return org_id


async def test_the_org_update_route_sets_shows_and_clears_the_budget(
    client: httpx.AsyncClient, org: str
) -> None:
    r = await client.patch(f"/admin/v1/orgs/{org}", json={"monthly_budget": "12.345678"}, headers=OPERATOR)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["monthly_budget"], body["monthly_budget_micro_usd"]) == ("12.345678", 12_345_678)
    assert body["spent_this_month"] == "0.00" and len(body["month"]) == 7
    shown = (await client.get("/admin/v1/orgs/acme/budget", headers=OPERATOR)).json()
    assert shown == {k: v for k, v in body.items() if k not in ("tier", "byok_override")}
    assert (body["tier"], body["byok_override"]) == (
        "enterprise",
        False,
    )  # the update route shows the plan too
    assert (
        await client.patch(f"/admin/v1/orgs/{org}", json={"monthly_budget": 40}, headers=OPERATOR)
    ).json()["monthly_budget_micro_usd"] == 40_000_000
    cleared = await client.patch(f"/admin/v1/orgs/{org}", json={"monthly_budget": None}, headers=OPERATOR)
    assert cleared.json()["monthly_budget"] is None


@pytest.mark.parametrize("bad", ["0.0000001", "-1", "ten", 12.5])
async def test_amounts_that_are_not_exact_usd_are_400s(
    client: httpx.AsyncClient, org: str, bad: object
) -> None:
    r = await client.patch(f"/admin/v1/orgs/{org}", json={"monthly_budget": bad}, headers=OPERATOR)
    assert r.status_code == 400, r.text
    assert (await client.get(f"/admin/v1/orgs/{org}/budget", headers=OPERATOR)).json()[
        "monthly_budget"
    ] is None


async def test_unknown_fields_and_orgs(client: httpx.AsyncClient, org: str) -> None:
    assert (
        await client.patch(f"/admin/v1/orgs/{org}", json={"budget": "5"}, headers=OPERATOR)
    ).status_code == 400
    assert (
        await client.patch("/admin/v1/orgs/nope", json={"monthly_budget": "5"}, headers=OPERATOR)
    ).status_code == 404


async def test_a_keys_spend_limit_at_creation_and_after(
    client: httpx.AsyncClient, org: str, app: FastAPI
) -> None:
    made = await client.post(
        f"/admin/v1/orgs/{org}/api-keys", json={"name": "ci", "spend_limit": "5"}, headers=OPERATOR
    )
    assert made.status_code == 201, made.text
    key = made.json()
    assert (key["spend_limit"], key["spend_limit_micro_usd"], key["spent_this_month_micro_usd"]) == (
        "5.00",
        5_000_000,
        0,
    )
    services: Services = app.state.services
    services.spend_caps.close(
        await services.spend_caps.reserve(org, key["id"], 1_000_000), 0
    )  # caps now in memory
    r = await client.patch(
        f"/admin/v1/orgs/{org}/api-keys/{key['id']}", json={"spend_limit": "0.25"}, headers=OPERATOR
    )
    assert r.status_code == 200 and r.json()["spend_limit"] == "0.25"
    listed = (await client.get(f"/admin/v1/orgs/{org}/api-keys", headers=OPERATOR)).json()
    assert [k["spend_limit_micro_usd"] for k in listed] == [250_000]
    # This process enforces the change at once: the next request reads the caps again.
    with pytest.raises(SpendLimitExceededError):
        await services.spend_caps.reserve(org, key["id"], 250_001)
    r = await client.patch(
        f"/admin/v1/orgs/{org}/api-keys/{key['id']}", json={"spend_limit": None}, headers=OPERATOR
    )
    assert r.json()["spend_limit"] is None
    bad = await client.post(
        f"/admin/v1/orgs/{org}/api-keys", json={"name": "x", "spend_limit": "1.5555555"}, headers=OPERATOR
    )
    assert bad.status_code == 400
    missing = await client.patch(
        f"/admin/v1/orgs/{org}/api-keys/key_nope", json={"spend_limit": "1"}, headers=OPERATOR
    )
    assert missing.status_code == 404


async def test_billing_may_set_the_budget_keys_may_set_key_limits_viewers_neither(
    client: httpx.AsyncClient, org: str
) -> None:
    key = (await client.post(f"/admin/v1/orgs/{org}/api-keys", json={"name": "ci"}, headers=OPERATOR)).json()
    billing = bearer(await mint_token(client, org, "billing"))
    viewer = bearer(await mint_token(client, org, "viewer"))
    assert (
        await client.patch(f"/admin/v1/orgs/{org}", json={"monthly_budget": "1"}, headers=billing)
    ).status_code == 200
    assert (
        await client.patch(f"/admin/v1/orgs/{org}", json={"monthly_budget": "9"}, headers=viewer)
    ).status_code == 403
    assert (await client.get(f"/admin/v1/orgs/{org}/budget", headers=viewer)).json()[
        "monthly_budget"
    ] == "1.00"
    limit = {"spend_limit": "1"}
    assert (
        await client.patch(f"/admin/v1/orgs/{org}/api-keys/{key['id']}", json=limit, headers=billing)
    ).status_code == 403
    assert (
        await client.patch(f"/admin/v1/orgs/{org}/api-keys/{key['id']}", json=limit, headers=viewer)
    ).status_code == 403
