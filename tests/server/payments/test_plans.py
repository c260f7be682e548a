"""`GET /admin/v1/plans` with Stripe configured: purchases are on, and exactly the tiers with a
price in PATCHBAY_STRIPE_TIER_PRICES can be subscribed to."""

from __future__ import annotations

import httpx


async def test_with_stripe_the_priced_tiers_are_subscribable(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    r = await client.get("/admin/v1/plans", headers=admin_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["purchases"] is True
    assert {t["tier"] for t in body["tiers"] if t["subscribable"]} == {"starter", "pro"}
