"""Without PATCHBAY_STRIPE_SECRET_KEY purchases are off: billing works from grants alone, and the
payment surfaces say so and how to turn them on."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from server.services import Services


async def test_without_stripe_checkout_and_webhook_say_purchases_are_off(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    svc: Services = app.state.services
    assert svc.payments is None and svc.webhook is None
    org = (await client.post("/admin/v1/orgs", json={"name": "acme"}, headers=admin_headers)).json()["id"]
    r = await client.post(
        f"/admin/v1/orgs/{org}/billing/checkout",
        json={"kind": "credits", "pack": "usd10"},
        headers=admin_headers,
    )
    assert r.status_code == 409
    assert r.json()["error"]["type"] == "purchases_off"
    assert r.json()["error"]["message"].startswith("purchases are off: set PATCHBAY_STRIPE_SECRET_KEY")
    hook = await client.post("/v1/stripe/webhook", content=b"{}", headers={"stripe-signature": "t=1,v1=00"})
    assert hook.status_code == 503 and "PATCHBAY_STRIPE_WEBHOOK_SECRET" in hook.json()["error"]["message"]
    await svc.ledger.grant(org, 5_000_000, "grant-1")
    assert (await svc.ledger.balance(org)).balance == 5_000_000
