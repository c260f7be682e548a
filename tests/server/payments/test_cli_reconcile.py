"""`patchbay billing reconcile` applies the Stripe events no webhook delivered, once."""

from __future__ import annotations

import asyncio
import json

from click.testing import CliRunner, Result

from server.cli import cli
from server.db import Database
from tests.emulators.stripe_emulator import SECRET_KEY, WEBHOOK_SECRET, StripeEmulator
from tests.server.payments.conftest import TIER_PRICES


async def run(env: dict[str, str], *args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env, catch_exceptions=False)


async def test_reconcile_applies_missed_events_once(
    db: Database, db_url: str, emulator: tuple[StripeEmulator, str]
) -> None:
    emu, url = emulator
    env = {
        "PATCHBAY_DATABASE_URL": db_url,
        "PATCHBAY_STRIPE_SECRET_KEY": SECRET_KEY,
        "PATCHBAY_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "PATCHBAY_STRIPE_API_BASE": url,
        "PATCHBAY_STRIPE_TIER_PRICES": TIER_PRICES,
    }
    org = (await run(env, "org", "create", "acme")).stdout.strip()
    made = emu.create_session(
        {
            "mode": "payment",
            "client_reference_id": org,
            "metadata": {"org_id": org, "pack": "usd50"},
            "line_items": [
                {"price_data": {"currency": "usd", "unit_amount": "5000", "product_data": {"name": "p"}}}
            ],
        }
    )
    emu.complete(made["id"])

    first = await run(env, "billing", "reconcile", "--since", "2026-01-01T00:00:00Z", "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["applied"] == [{"org_id": org, "outcome": "granted 50.00 USD"}]
    again = await run(env, "billing", "reconcile", "--since", "2026-01-01T00:00:00Z", "--json")
    assert json.loads(again.stdout) | {"since": "-"} == {
        "since": "-",
        "events": 1,
        "applied": [],
        "already_applied": 1,
    }
    balance = await run(env, "credits", "balance", "--org", org, "--json")
    assert json.loads(balance.stdout)["balance_micro_usd"] == 50_000_000

    off = await run({"PATCHBAY_DATABASE_URL": db_url}, "billing", "reconcile", "--json")
    assert off.exit_code == 1 and "purchases are off" in off.output
    bad = await run(env, "billing", "reconcile", "--since", "yesterday")
    assert bad.exit_code == 2
