"""The admin API's checkout, through the official SDK against the Stripe emulator; and
`reconcile`, which applies the events a webhook missed."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from billing.credit_packs import default_packs
from server.services import Services
from tests.emulators.stripe_emulator import StripeEmulator
from tests.server.payments.conftest import checkout


async def test_a_credit_pack_checkout_carries_the_org_and_the_pack(
    client: httpx.AsyncClient, admin_headers: dict[str, str], org: str, emu: StripeEmulator
) -> None:
    first = await checkout(client, admin_headers, org, kind="credits", pack="usd200")
    second = await checkout(client, admin_headers, org, kind="credits", pack="usd10")
    session = emu.sessions[first["id"]]
    params = emu.requests[-1][2]
    assert first["url"] == session["url"] and first["id"] != second["id"]
    assert (
        session["mode"] == "payment"
        and session["amount_total"] == 20_000
        and session["client_reference_id"] == org
    )
    assert session["metadata"] == {"org_id": org, "pack": "usd200", "credits_micro_usd": "210000000"}
    assert params["line_items"][0]["price_data"]["unit_amount"] == "1000"
    assert params["success_url"] == "http://patchbay.test/ui/#/billing?checkout=done"
    # One Stripe customer per org, made at the first checkout and reused.
    assert len(emu.customers) == 1 and emu.sessions[second["id"]]["customer"] == session["customer"]
    assert emu.customers[session["customer"]]["metadata"] == {"org_id": org}


async def test_a_subscription_checkout_uses_the_tier_prices(
    client: httpx.AsyncClient, admin_headers: dict[str, str], org: str, emu: StripeEmulator
) -> None:
    made = await checkout(client, admin_headers, org, kind="subscription", tier="pro")
    params = emu.requests[-1][2]
    assert emu.sessions[made["id"]]["mode"] == "subscription"
    assert params["line_items"] == [{"price": "price_pro", "quantity": "1"}]
    assert params["subscription_data"]["metadata"] == {"org_id": org, "tier": "pro"}


async def test_checkout_refusals_say_what_to_fix(
    client: httpx.AsyncClient, admin_headers: dict[str, str], org: str, emu: StripeEmulator
) -> None:
    url = f"/admin/v1/orgs/{org}/billing/checkout"
    cases = [
        ({"kind": "credits", "pack": "usd7"}, 404, "no credit pack 'usd7'"),
        ({"kind": "credits"}, 400, "name the credit pack"),
        ({"kind": "subscription", "tier": "agency"}, 400, "PATCHBAY_STRIPE_TIER_PRICES"),
        ({"kind": "subscription"}, 400, "name the tier"),
        ({"kind": "gift"}, 400, "kind"),
    ]
    for body, status, text in cases:
        r = await client.post(url, json=body, headers=admin_headers)
        assert r.status_code == status and text in r.json()["error"]["message"], (body, r.text)
    r = await client.post(
        "/admin/v1/orgs/nope/billing/checkout",
        json={"kind": "credits", "pack": "usd10"},
        headers=admin_headers,
    )
    assert r.status_code == 404
    assert emu.sessions == {}


async def test_reconcile_applies_what_the_webhook_missed_once(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], org: str, emu: StripeEmulator
) -> None:
    svc: Services = app.state.services
    assert svc.webhook is not None
    for pack in ("usd10", "usd50"):
        made = await checkout(client, admin_headers, org, kind="credits", pack=pack)
        emu.complete(made["id"])
    sub = await checkout(client, admin_headers, org, kind="subscription", tier="starter")
    emu.complete(sub["id"])
    emu.emit("payout.paid", {"id": "po_1", "object": "payout"})
    assert len(emu.events) == 5
    first = await svc.webhook.reconcile(since=0)
    again = await svc.webhook.reconcile(since=0)
    assert [a.duplicate for a in first] == [False] * 5 and [a.duplicate for a in again] == [True] * 5
    packs = default_packs()
    assert (await svc.ledger.balance(org)).balance == packs["usd10"].credits + packs["usd50"].credits
    async with svc.db.session() as s:
        from foundation.orgs import Org

        found = await s.get(Org, org)
        assert found is not None and found.tier == "starter"


async def test_usage_reaches_the_billing_meter_once_per_identifier(app: FastAPI, emu: StripeEmulator) -> None:
    svc: Services = app.state.services
    assert svc.payments is not None
    for _ in range(2):
        await svc.payments.report_usage("cus_1", 1_665, "req_1:llm", 1_780_000_000)
    await svc.payments.report_usage("cus_1", 10, "req_2:llm", 1_780_000_060)
    assert {k: (m["event_name"], m["payload"]) for k, m in emu.meter_events.items()} == {
        "req_1:llm": ("byok_surcharge", {"stripe_customer_id": "cus_1", "value": "1665"}),
        "req_2:llm": ("byok_surcharge", {"stripe_customer_id": "cus_1", "value": "10"}),
    }
