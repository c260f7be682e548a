"""Failed subscription payments against the Stripe emulator: `invoice.payment_failed` starts the
tier's grace period, `invoice.paid` ends it (and grants a bundled tier's included credits once
per invoice), and the grace sweeper moves an org that never paid to its fallback tier, with no
request arriving, on the test's clock; on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from billing.ledger_tables import LedgerEntry
from billing.tiers import policy_for
from foundation.audit import AuditEvent
from routing.config_versions import read_versions
from routing.tables import Connection
from server.payments.tables import StripeCustomer
from tests.emulators.stripe_emulator import StripeEmulator
from tests.server.payments.conftest import Clock, checkout
from tests.server.payments.test_webhook import count, deliver, services, tier


async def subscribe(
    client: httpx.AsyncClient, headers: dict[str, str], org: str, emu: StripeEmulator, tier_name: str
) -> tuple[str, str]:
    made = await checkout(client, headers, org, kind="subscription", tier=tier_name)
    _, created = emu.complete(made["id"])
    assert (await deliver(emu, client, created))["outcome"] == f"tier {tier_name}"
    sub = emu.sessions[made["id"]]["subscription"]
    return sub, emu.subscriptions[sub]["customer"]


async def version(app: FastAPI, org: str) -> int:
    async with services(app).db.session() as s:
        return (await read_versions(s, [org])).get(org, 0)


async def test_an_unpaid_grace_period_falls_back_to_the_tables_tier_without_a_request(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    org: str,
    emu: StripeEmulator,
    clock: Clock,
) -> None:
    r = await client.post(
        f"/admin/v1/orgs/{org}/connections",
        json={"provider": "openai", "key": "sk-test-0123456789abcdef"},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    sub, customer = await subscribe(client, admin_headers, org, emu, "pro")
    days = policy_for("pro").grace_period_days
    assert days == 7
    failing = emu.fail_invoice(customer, 9900, subscription=sub)
    failed_invoice = failing["data"]["object"]["id"]
    failed = await deliver(emu, client, failing)
    assert failed["outcome"].startswith("payment failure recorded; grace period until 2026-06-04T12:00:00")
    # A second failure (Stripe's retry) does not extend it.
    clock.advance(days=3)
    again = await deliver(emu, client, emu.fail_invoice(customer, 9900, attempt_count=2, subscription=sub))
    assert "already running until 2026-06-04T12:00:00" in again["outcome"]
    grace = services(app).grace
    assert grace is not None and grace.running, "the sweeper runs while serving"
    await grace.aclose()  # from here the test drives each sweep, so no background run races it

    clock.advance(days=4, seconds=-1)
    assert await grace.sweep() == []
    assert await tier(app, org) == "pro"
    before = await version(app, org)
    clock.advance(seconds=1)
    assert await grace.sweep() == [org]
    assert await tier(app, org) == "free"
    assert await version(app, org) > before
    async with services(app).db.session() as s:
        moved = (
            await s.scalars(
                select(AuditEvent).where(AuditEvent.org_id == org, AuditEvent.action == "org.tier")
            )
        ).all()[-1]
        row = await s.get(StripeCustomer, org)
    assert moved.actor == "stripe" and moved.details["tier"] == "free" and moved.details["was"] == "pro"
    assert str(moved.details["reason"]).startswith("grace period of 7 days ended 2026-06-04T12:00:00")
    assert row is not None and row.grace_until is None
    assert await grace.sweep() == [], "once"
    assert await count(app, Connection, Connection.org_id == org) == 1, "a fallback deletes nothing"
    # Paid after all: the tier it pays for comes back.
    paid = await deliver(emu, client, emu.pay_invoice(sub, failed_invoice))
    assert paid["outcome"] == "invoice paid; tier pro"
    assert await tier(app, org) == "pro"


async def test_a_paid_invoice_ends_the_grace_period_and_an_older_failure_starts_none(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    org: str,
    emu: StripeEmulator,
    clock: Clock,
) -> None:
    sub, customer = await subscribe(client, admin_headers, org, emu, "starter")
    failing = emu.fail_invoice(customer, 2400, subscription=sub)
    await deliver(emu, client, failing)
    clock.advance(days=2)
    paid = emu.pay_invoice(sub, failing["data"]["object"]["id"])
    assert (await deliver(emu, client, paid))["outcome"] == "invoice paid; grace period ended"
    # The failure delivered again late, as another event (out of order): it is older than the payment.
    late = emu.emit("invoice.payment_failed", failing["data"]["object"])
    late["created"] = failing["created"]
    assert (await deliver(emu, client, late))["outcome"].endswith(
        "an invoice was paid since; no grace period"
    )
    clock.advance(days=30)
    grace = services(app).grace
    assert grace is not None and await grace.sweep() == []
    assert await tier(app, org) == "starter"


async def test_a_bundled_tier_gets_its_included_credits_once_per_paid_invoice(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], org: str, emu: StripeEmulator
) -> None:
    included = policy_for("enterprise").included_credits
    assert included == 500_000_000
    sub, _ = await subscribe(client, admin_headers, org, emu, "enterprise")
    first = emu.pay_invoice(sub)
    # The same invoice through a second event id (a resend Stripe makes as a new event).
    twin = emu.emit("invoice.paid", first["data"]["object"])
    outcomes = [(await deliver(emu, client, e))["outcome"] for e in (first, twin, first)]
    assert outcomes[0] == "invoice paid; granted 500.00 USD included with enterprise"
    assert outcomes[1] == "invoice paid; granted 500.00 USD included with enterprise (already)"
    next_period = await deliver(emu, client, emu.pay_invoice(sub))
    assert next_period["outcome"].startswith("invoice paid; granted 500.00")
    assert (await services(app).ledger.balance(org)).balance == 2 * included
    assert await count(app, LedgerEntry, LedgerEntry.org_id == org, LedgerEntry.kind == "grant") == 2


async def test_a_tier_without_included_credits_grants_nothing(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], org: str, emu: StripeEmulator
) -> None:
    sub, _ = await subscribe(client, admin_headers, org, emu, "pro")
    assert (await deliver(emu, client, emu.pay_invoice(sub)))["outcome"] == "invoice paid"
    assert (await services(app).ledger.balance(org)).balance == 0
