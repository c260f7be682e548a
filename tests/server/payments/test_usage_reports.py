"""The BYOK surcharge reported to the Stripe emulator as meter events: batched per org, sent
once (the report id is the event's `identifier`), retried after a refusal, returned to credits
once it is on the invoice, and never sent for an org without a live subscription; on SQLite and
PostgreSQL. Usage records are written as the usage writer writes them (`UsageSegment.to_row`)."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import select, update

from billing.ledger_tables import LedgerEntry
from billing.tables import UsageRecord
from billing.usage import Segment, UsageSegment
from providers.contract import BillingSource
from server.db import Database
from server.payments.tables import UsageReport
from server.payments.usage_reports import STAYS_ON_CREDITS, UsageReporter
from server.services import Services
from server.settings import Settings
from tests.emulators.stripe_emulator import StripeEmulator
from tests.server.payments.conftest import Clock
from tests.server.payments.test_grace import subscribe
from tests.server.payments.test_webhook import count, deliver, services


async def record(app: FastAPI, org: str, source: BillingSource, cost: int, clock: Clock) -> str:
    row = UsageSegment(
        org_id=org,
        segment=Segment.LLM,
        provider="openai",
        billing_source=source,
        cost_micro_usd=cost,
        at=clock(),
    ).to_row()
    async with services(app).db.session() as s:
        s.add(row)
        await s.commit()
    return row.id


async def report_ids(app: FastAPI, org: str) -> dict[int, str | None]:
    async with services(app).db.session() as s:
        rows = (
            await s.execute(
                select(UsageRecord.cost_micro_usd, UsageRecord.report_id).where(UsageRecord.org_id == org)
            )
        ).all()
    return {int(cost): rid for cost, rid in rows}


async def reporter(app: FastAPI) -> UsageReporter:
    """The server's reporter, its background loop stopped so the test drives each run alone."""
    found = services(app).usage_reporter
    assert found is not None
    if found.running:
        await found.aclose()
    return found


async def test_the_surcharge_is_sent_once_in_a_batch_and_returned_to_credits(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    org: str,
    emu: StripeEmulator,
    clock: Clock,
) -> None:
    running = services(app).usage_reporter
    assert running is not None and running.running, "the reporter runs while serving with Stripe"
    _, customer = await subscribe(client, admin_headers, org, emu, "starter")
    await services(app).ledger.grant(org, 10_000_000, "seed")
    for source, cost in (
        (BillingSource.BYOK, 1_000),
        (BillingSource.PRIVATE, 2_500),
        (BillingSource.PLATFORM, 5_000),
        (BillingSource.BYOK, 0),
    ):
        await record(app, org, source, cost, clock)

    sent = await (await reporter(app)).run_once()

    assert [(r.value, r.records) for r in sent] == [(3_500, 2)]
    [event] = emu.meter_events.values()
    assert event["identifier"] == sent[0].id and event["event_name"] == "byok_surcharge"
    assert event["payload"] == {"stripe_customer_id": customer, "value": "3500"}
    assert event["timestamp"] == clock.unix()
    ids = await report_ids(app, org)
    assert ids[1_000] == ids[2_500] == sent[0].id and ids[5_000] is None and ids[0] is None
    assert (await services(app).ledger.balance(org)).balance == 10_003_500
    # Nothing new: nothing sent; a report whose answer was lost is sent again with the same
    # identifier, Stripe keeps one, and the credits come back once.
    assert await (await reporter(app)).run_once() == []
    async with services(app).db.session() as s:
        await s.execute(update(UsageReport).values(sent_at=None))
        await s.commit()
    assert [r.id for r in await (await reporter(app)).run_once()] == [sent[0].id]
    assert len(emu.meter_events) == 1
    assert await count(app, LedgerEntry, LedgerEntry.org_id == org, LedgerEntry.kind == "refund") == 1
    assert (await services(app).ledger.balance(org)).balance == 10_003_500


async def test_a_refused_report_is_retried_and_counts_its_attempts(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    org: str,
    emu: StripeEmulator,
    clock: Clock,
) -> None:
    await subscribe(client, admin_headers, org, emu, "starter")
    await services(app).ledger.grant(org, 1_000_000, "seed")
    await record(app, org, BillingSource.BYOK, 700, clock)
    emu.refuse_meter_events = 2

    assert await (await reporter(app)).run_once() == []
    assert await (await reporter(app)).run_once() == []
    async with services(app).db.session() as s:
        [pending] = (await s.scalars(select(UsageReport))).all()
    assert pending.sent_at is None and pending.attempts == 2 and pending.value == 700
    assert pending.last_error is not None and "No active meter" in pending.last_error
    assert (await services(app).ledger.balance(org)).balance == 1_000_000, "no refund before Stripe has it"

    [sent] = await (await reporter(app)).run_once()
    assert sent.id == pending.id and list(emu.meter_events) == [pending.id]
    assert (await services(app).ledger.balance(org)).balance == 1_000_700


async def test_an_org_without_a_live_subscription_keeps_its_surcharge_on_credits(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    org: str,
    emu: StripeEmulator,
    clock: Clock,
) -> None:
    await record(app, org, BillingSource.BYOK, 900, clock)
    assert await (await reporter(app)).run_once() == []
    assert (await report_ids(app, org))[900] == STAYS_ON_CREDITS
    # Subscribed afterwards: only what comes after is reported.
    sub, _ = await subscribe(client, admin_headers, org, emu, "starter")
    await services(app).ledger.grant(org, 1_000_000, "seed")
    await record(app, org, BillingSource.BYOK, 400, clock)
    assert [r.value for r in await (await reporter(app)).run_once()] == [400]
    # Cancelled: Stripe bills nothing more, so nothing more is reported.
    await deliver(emu, client, emu.cancel(sub))
    await record(app, org, BillingSource.BYOK, 300, clock)
    assert await (await reporter(app)).run_once() == []
    assert (await report_ids(app, org))[300] == STAYS_ON_CREDITS
    assert len(emu.meter_events) == 1


async def test_without_stripe_nothing_is_reported(tmp_path: Path, db_url: str, db: Database) -> None:
    svc = Services.build(Settings(data_dir=tmp_path, database_url=db_url, admin_token="x" * 40), db)
    assert svc.payments is None and svc.usage_reporter is None and svc.grace is None
