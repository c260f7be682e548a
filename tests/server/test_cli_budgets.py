"""`patchbay org update --monthly-budget` and `patchbay apikey create|update --spend-limit`, end
to end on both databases: exact amounts, `none`, `--json`, exit codes, and what is stored."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from billing.spend_store import get_cap
from foundation.audit import AuditEvent
from server.db import Database
from tests.server.test_cli import run_cli


@pytest.fixture
async def org(db: Database, db_url: str) -> str:
    created = await run_cli(db_url, "org", "create", "acme", "--json")
    org_id: str = json.loads(created.output)["id"]
    return org_id


async def test_org_update_sets_and_clears_the_monthly_budget(db: Database, db_url: str, org: str) -> None:
    result = await run_cli(db_url, "org", "update", "acme", "--monthly-budget", "99.50", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["monthly_budget"] == "99.50" and shown["monthly_budget_micro_usd"] == 99_500_000
    assert shown["spent_this_month_micro_usd"] == 0 and shown["org_id"] == org
    async with db.session() as s:
        assert await get_cap(s, org) == 99_500_000
        events = (await s.scalars(select(AuditEvent).where(AuditEvent.action == "org.budget"))).all()
        assert [e.details for e in events] == [{"monthly_budget_usd": "99.50"}]

    text = await run_cli(db_url, "org", "update", org, "--monthly-budget", "0.000001")
    assert text.exit_code == 0 and "monthly budget: 0.000001 USD" in text.output

    cleared = await run_cli(db_url, "org", "update", org, "--monthly-budget", "none", "--json")
    assert json.loads(cleared.output)["monthly_budget"] is None
    async with db.session() as s:
        assert await get_cap(s, org) is None


@pytest.mark.parametrize("bad", ["0.0000001", "-5", "lots", "1e400"])
async def test_an_amount_that_is_not_exact_usd_is_refused_with_exit_1(
    db: Database, db_url: str, org: str, bad: str
) -> None:
    result = await run_cli(db_url, "org", "update", org, "--monthly-budget", bad, "--json")
    assert result.exit_code == 1, result.output
    assert json.loads(result.output)["error"]["type"] == "invalid_amount"
    async with db.session() as s:
        assert await get_cap(s, org) is None


async def test_usage_mistakes_and_unknown_orgs(db_url: str, org: str) -> None:
    assert (await run_cli(db_url, "org", "update", org)).exit_code == 2  # --monthly-budget is required
    missing = await run_cli(db_url, "org", "update", "nope", "--monthly-budget", "5")
    assert missing.exit_code == 1 and "no org 'nope'" in missing.output
    assert "--monthly-budget USD" in (await run_cli(db_url, "org", "update", "--help")).output


async def test_apikey_spend_limit_at_creation_then_updated_and_listed(
    db: Database, db_url: str, org: str
) -> None:
    made = await run_cli(
        db_url, "apikey", "create", "--org", org, "--name", "ci", "--spend-limit", "25", "--json"
    )
    assert made.exit_code == 0, made.output
    issued = json.loads(made.output)
    assert (issued["spend_limit"], issued["spend_limit_micro_usd"]) == ("25.00", 25_000_000)
    key_id = issued["id"]

    updated = await run_cli(
        db_url, "apikey", "update", "--org", org, key_id, "--spend-limit", "7.25", "--json"
    )
    assert updated.exit_code == 0, updated.output
    assert json.loads(updated.output)["spend_limit_micro_usd"] == 7_250_000
    listed = json.loads((await run_cli(db_url, "apikey", "list", "--org", org, "--json")).output)
    assert [(k["id"], k["spend_limit"], k["spent_this_month"]) for k in listed] == [(key_id, "7.25", "0.00")]
    table = (await run_cli(db_url, "apikey", "list", "--org", org)).output
    assert "0.00/7.25" in table

    cleared = await run_cli(db_url, "apikey", "update", "--org", org, key_id, "--spend-limit", "none")
    assert cleared.exit_code == 0 and "none" in cleared.output
    async with db.session() as s:
        assert await get_cap(s, org, key_id) is None

    bad = await run_cli(db_url, "apikey", "create", "--org", org, "--name", "x", "--spend-limit", "1.1234567")
    assert bad.exit_code == 1
    unknown = await run_cli(db_url, "apikey", "update", "--org", org, "key_nope", "--spend-limit", "1")
    assert unknown.exit_code == 1 and "key_nope" in unknown.output
