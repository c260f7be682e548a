"""`POST /v1/stripe/webhook` against the Stripe emulator: signed deliveries, once per event and per
payment, tiers from subscriptions, refunds and failed payments; on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from billing.credit_packs import default_packs
from billing.ledger_tables import LedgerEntry
from foundation.audit import AuditEvent
from foundation.orgs import Org
from routing.config_versions import read_versions
from routing.tables import Connection
from server.db import Database
from server.payments.tables import StripeEvent
from server.services import Services
from tests.emulators.stripe_emulator import WEBHOOK_SECRET, StripeEmulator, signature_header
from tests.server.payments.conftest import WEBHOOK, checkout


def services(app: FastAPI) -> Services:
    svc: Services = app.state.services
    return svc


async def count(app: FastAPI, model: Any, *where: Any) -> int:
    async with services(app).db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def tier(app: FastAPI, org: str) -> str:
    async with services(app).db.session() as s:
        found = await s.get(Org, org)
        assert found is not None
        return found.tier


async def deliver(emu: StripeEmulator, client: httpx.AsyncClient, event: dict[str, Any]) -> dict[str, Any]:
    r = await emu.deliver(client, WEBHOOK, event)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_a_credit_pack_is_granted_exactly_once_whatever_the_deliveries(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], org: str, emu: StripeEmulator
) -> None:
    made = await checkout(client, admin_headers, org, kind="credits", pack="usd50")
    assert made["url"].startswith("https://checkout.stripe.com/") and made["id"] in emu.sessions
    completed = emu.complete(made["id"])[0]
    # The same paid session through a second event (Stripe sends both for delayed payment methods).
    again = emu.emit("checkout.session.async_payment_succeeded", emu.sessions[made["id"]])
    unrelated = emu.emit("customer.created", emu.customers[emu.sessions[made["id"]]["customer"]])

    outcomes = [
        await deliver(emu, client, e) for e in (again, unrelated, completed, completed, again, completed)
    ]

    pack = default_packs()["usd50"]
    balance = await services(app).ledger.balance(org)
    assert balance.balance == pack.credits == 50_000_000
    assert await count(app, LedgerEntry, LedgerEntry.org_id == org, LedgerEntry.kind == "purchase") == 1
    assert [o["duplicate"] for o in outcomes] == [False, False, False, True, True, True]
    assert (
        outcomes[0]["outcome"] == "granted 50.00 USD"
        and outcomes[2]["outcome"] == "granted 50.00 USD (already)"
    )
    assert await count(app, StripeEvent) == 3


async def test_a_bad_signature_is_a_400_that_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], org: str, emu: StripeEmulator
) -> None:
    made = await checkout(client, admin_headers, org, kind="credits", pack="usd10")
    event = emu.complete(made["id"])[0]
    body = emu.payload(event)
    now = int(time.time())
    forged = [
        {"stripe-signature": signature_header(body, "whsec_someone_else", now)},
        {"stripe-signature": signature_header(body + b" ", WEBHOOK_SECRET, now)},  # signed other bytes
        {"stripe-signature": signature_header(body, WEBHOOK_SECRET, now - 3600)},  # replayed an hour later
        {"stripe-signature": f"t={now},v1=00"},
        {},
    ]
    for headers in forged:
        r = await client.post(WEBHOOK, content=body, headers={"content-type": "application/json", **headers})
        assert r.status_code == 400 and r.json()["error"]["type"] == "bad_signature"
    r = await client.post(
        WEBHOOK,
        content=b"not json",
        headers={"stripe-signature": signature_header(b"not json", WEBHOOK_SECRET, now)},
    )
    assert r.status_code == 400
    assert (await services(app).ledger.balance(org)).balance == 0
    assert await count(app, StripeEvent) == 0
    assert (await deliver(emu, client, event))["outcome"] == "granted 10.00 USD"


async def test_a_subscription_moves_the_tier_and_never_deletes_a_connection(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], org: str, emu: StripeEmulator
) -> None:
    r = await client.post(
        f"/admin/v1/orgs/{org}/connections",
        json={"provider": "openai", "key": "sk-test-0123456789abcdef"},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    made = await checkout(client, admin_headers, org, kind="subscription", tier="starter")
    params = emu.requests[-1][2]
    assert [i["price"] for i in params["line_items"]] == ["price_starter", "price_byok_fee"]
    completed, created = emu.complete(made["id"])
    sub = emu.sessions[made["id"]]["subscription"]
    versions: list[int] = []

    async def version() -> int:
        async with services(app).db.session() as s:
            return (await read_versions(s, [org])).get(org, 0)

    assert (await deliver(emu, client, completed))["outcome"].startswith("ignored: a subscription checkout")
    assert (await deliver(emu, client, created))["outcome"] == "tier starter"
    assert await tier(app, org) == "starter"
    versions.append(await version())
    upgraded = emu.change_plan(sub, "price_pro")
    assert (await deliver(emu, client, upgraded))["outcome"] == "tier pro"
    assert await tier(app, org) == "pro"
    versions.append(await version())
    # A late redelivery of the old `created` event (another event id in Stripe's retry): the
    # subscription is re-read, so it cannot move the org back to starter.
    late = emu.emit("customer.subscription.created", {**emu.subscriptions[sub], "status": "active"})
    assert (await deliver(emu, client, late))["outcome"] == "tier pro (unchanged)"
    cancelled = emu.cancel(sub)
    assert (await deliver(emu, client, cancelled))["outcome"] == "tier free"
    assert await tier(app, org) == "free"
    versions.append(await version())

    assert versions[0] < versions[1] < versions[2], "every change bumps the org's config version"
    assert await count(app, Connection, Connection.org_id == org) == 1
    assert await count(app, AuditEvent, AuditEvent.org_id == org, AuditEvent.action == "org.tier") == 3


async def test_past_due_keeps_the_tier_and_a_failed_payment_is_recorded(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], org: str, emu: StripeEmulator
) -> None:
    made = await checkout(client, admin_headers, org, kind="subscription", tier="pro")
    _, created = emu.complete(made["id"])
    await deliver(emu, client, created)
    sub = emu.sessions[made["id"]]["subscription"]
    customer = emu.subscriptions[sub]["customer"]
    failed = await deliver(emu, client, emu.fail_invoice(customer, 9900))
    assert failed["outcome"].startswith("payment failure recorded")
    assert (await deliver(emu, client, emu.set_status(sub, "past_due")))["outcome"] == "tier pro (unchanged)"
    assert await tier(app, org) == "pro"
    assert (
        await count(app, AuditEvent, AuditEvent.action == "billing.payment_failed", AuditEvent.org_id == org)
        == 1
    )
    # Stripe gives up after its retries: the subscription is unpaid, the org falls back.
    assert (await deliver(emu, client, emu.set_status(sub, "unpaid")))["outcome"] == "tier free"


async def test_a_refund_takes_back_its_share_of_the_credits_once(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], org: str, emu: StripeEmulator
) -> None:
    made = await checkout(client, admin_headers, org, kind="credits", pack="usd200")
    await deliver(emu, client, emu.complete(made["id"])[0])
    charge = emu.charge_for(made["id"])
    first = emu.refund(charge, 5000)  # 50 USD of 200: a quarter of the 210 USD of credits
    second = emu.refund(charge, 15000)
    for event in (second, first, second, first):
        await deliver(emu, client, event)
    entries = await count(app, LedgerEntry, LedgerEntry.org_id == org, LedgerEntry.kind == "adjustment")
    assert entries == 2
    assert (await services(app).ledger.balance(org)).balance == 0


async def test_an_event_type_not_acted_on_is_a_200_that_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient, org: str, emu: StripeEmulator
) -> None:
    event = emu.emit("payout.paid", {"id": "po_1", "object": "payout"})
    answer = await deliver(emu, client, event)
    assert answer == {"received": True, "duplicate": False, "outcome": "ignored: payout.paid is not acted on"}
    assert await tier(app, org) == "free"
    assert (await services(app).ledger.balance(org)).balance == 0


async def test_another_replica_routes_by_the_new_tier_after_its_next_poll(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], org: str, emu: StripeEmulator
) -> None:
    settings = services(app).settings
    replica = Services.build(settings, Database(settings.resolved_database_url), admin_api=False)
    registry = replica.gateway.registry
    try:
        assert (await registry.get(org)).routing.tier == "free"
        made = await checkout(client, admin_headers, org, kind="subscription", tier="starter")
        _, created = emu.complete(made["id"])
        sub = emu.sessions[made["id"]]["subscription"]
        seen = []
        # Each change happens in Stripe just before its delivery (the webhook re-reads the subscription).
        for step in (lambda: created, lambda: emu.change_plan(sub, "price_pro"), lambda: emu.cancel(sub)):
            await deliver(emu, client, step())
            # What the replica's poll loop does every couple of seconds, run once here.
            await registry.poll_once()
            seen.append((await registry.get(org)).routing.tier)
        assert seen == ["starter", "pro", "free"]
    finally:
        await replica.aclose()
