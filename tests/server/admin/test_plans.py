"""`GET /admin/v1/plans` without Stripe, on both backends: the packaged tier table and credit
packs, `purchases` false and no tier subscribable; any signed-in caller reads it, nobody else."""

from __future__ import annotations

import httpx

from billing.credit_packs import default_packs
from billing.tiers import default_table
from foundation.tiers import Tier
from tests.server.access.conftest import OPERATOR, bearer, mint_token
from tests.server.admin.test_billing import make_org


async def test_the_plans_are_the_packaged_table_and_any_caller_reads_them(client: httpx.AsyncClient) -> None:
    org = await make_org(client, "acme")
    viewer = bearer(await mint_token(client, org, "viewer"))
    r = await client.get("/admin/v1/plans", headers=viewer)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["purchases"] is False
    assert [t["tier"] for t in body["tiers"]] == [t.value for t in Tier]
    assert not any(t["subscribable"] for t in body["tiers"])
    table = default_table()
    for row in body["tiers"]:
        p = table[Tier(row["tier"])]
        assert (row["byok_allowed"], row["private_allowed"], row["platform_allowed"]) == (
            p.byok_allowed,
            p.private_allowed,
            p.platform_allowed,
        )
        assert (
            row["markup_bp"],
            row["byok_surcharge_bp"],
            row["voice_fee_micro_usd"],
            row["max_connections"],
        ) == (
            p.markup_bp,
            p.byok_surcharge_bp,
            p.voice_fee,
            p.max_connections,
        )
    starter = next(t for t in body["tiers"] if t["tier"] == "starter")
    assert (
        starter["markup"],
        starter["byok_model"],
        starter["byok_surcharge"],
        starter["voice_fee_usd"],
    ) == ("20%", "surcharge", "10%", "0.01")
    assert [p["id"] for p in body["credit_packs"]] == list(default_packs())
    big = body["credit_packs"][-1]
    assert (big["price_cents"], big["price_usd"], big["credits_micro_usd"], big["credits_usd"]) == (
        20_000,
        "200.00",
        210_000_000,
        "210.00",
    )
    assert (await client.get("/admin/v1/plans", headers=OPERATOR)).json() == body


async def test_the_plans_need_a_signed_in_caller(client: httpx.AsyncClient) -> None:
    assert (await client.get("/admin/v1/plans")).status_code == 401
    assert (await client.get("/admin/v1/plans", headers={"authorization": "Bearer nope"})).status_code == 401
