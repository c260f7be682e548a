"""`patchbay org update --tier/--byok-override` end to end on both databases: the change is
stored, audited and bumps the org's config version (so running servers pick it up by their
poll); a tier the table does not have is exit 1 naming the tiers; no option is exit 2."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from foundation.audit import AuditEvent
from routing.config_versions import read_versions
from server import org_plan
from server.db import Database
from tests.server.test_cli import run_cli


@pytest.fixture
async def org(db: Database, db_url: str) -> str:
    created = await run_cli(db_url, "org", "create", "acme", "--tier", "pro", "--json")
    org_id: str = json.loads(created.output)["id"]
    return org_id


async def test_tier_and_override_are_set_audited_and_bump_the_config_version(
    db: Database, db_url: str, org: str
) -> None:
    result = await run_cli(
        db_url, "org", "update", "acme", "--tier", "free", "--byok-override", "on", "--json"
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert (shown["org_id"], shown["tier"], shown["byok_override"], shown["monthly_budget"]) == (
        org,
        "free",
        True,
        None,
    )
    async with db.session() as s:
        plan = await org_plan.org_plan(s, org)
        assert (plan.tier, plan.byok_override) == ("free", True)
        version = (await read_versions(s, [org])).get(org, 0)
        assert version >= 1
        events = (
            await s.scalars(
                select(AuditEvent).where(AuditEvent.action.in_(["org.tier", "org.byok_override"]))
            )
        ).all()
        assert sorted((e.action, e.actor, e.details) for e in events) == [
            ("org.byok_override", "cli", {"byok_override": True}),
            ("org.tier", "cli", {"tier": "free", "was": "pro"}),
        ]

    text = await run_cli(
        db_url, "org", "update", org, "--tier", "PRO", "--byok-override", "off", "--monthly-budget", "5"
    )
    assert text.exit_code == 0, text.output
    assert "tier: pro; BYOK override: off" in text.output and "monthly budget: 5.00 USD" in text.output
    async with db.session() as s:
        assert (await read_versions(s, [org]))[org] == version + 1  # one bump per change


@pytest.mark.parametrize(
    ("args", "kind"),
    [(["--tier", "platinum"], "unknown_tier"), (["--byok-override", "maybe"], "invalid_request")],
)
async def test_a_bad_value_is_exit_1_and_changes_nothing(
    db: Database, db_url: str, org: str, args: list[str], kind: str
) -> None:
    result = await run_cli(db_url, "org", "update", org, *args, "--monthly-budget", "5", "--json")
    assert result.exit_code == 1, result.output
    error = json.loads(result.output)["error"]
    assert error["type"] == kind
    if kind == "unknown_tier":
        assert "free, starter, pro, agency, enterprise" in error["message"]
    async with db.session() as s:
        plan = await org_plan.org_plan(s, org)
        assert (plan.tier, plan.byok_override) == ("pro", False)
        assert await read_versions(s, [org]) == {}


async def test_usage(db_url: str, org: str) -> None:
    assert (await run_cli(db_url, "org", "update", org)).exit_code == 2
    helped = (await run_cli(db_url, "org", "update", "--help")).output
    assert "--tier TIER" in helped and "--byok-override on|off" in helped and "enterprise" in helped
