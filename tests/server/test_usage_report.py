"""The usage summary through the admin API and the CLI, over recorded segments."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx

from billing.usage import Segment, UsageSegment, new_usage_recorder
from foundation.db import utcnow
from providers.contract import BillingSource
from providers.types import Usage
from server import accounts
from server.db import Database
from tests.server.test_cli import run_cli


async def seeded_org(db: Database, name: str) -> str:
    async with db.session() as s:
        org = await accounts.create_org(s, name)
    recorder = new_usage_recorder(db.sessions)
    now = utcnow()
    seeds = (
        (BillingSource.BYOK, 120, 1, 0),
        (BillingSource.PLATFORM, 30, 2, 1_234_567),
        (BillingSource.BYOK, 5, 60, 3),
    )
    for source, tokens, age, cost in seeds:
        recorder.record(
            UsageSegment(
                org_id=org.id,
                segment=Segment.LLM,
                provider="openai",
                billing_source=source,
                tokens=Usage(input_tokens=tokens, output_tokens=1),
                cost_micro_usd=cost,
                at=now - timedelta(minutes=age),
            )
        )
    await recorder.flush()
    return org.id


async def test_admin_usage_groups_and_windows(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database, unique_prefix: str
) -> None:
    org_id = await seeded_org(db, f"usage-{unique_prefix}")
    url = f"/admin/v1/orgs/{org_id}/usage"
    r = await client.get(url, params={"since": "30m", "group_by": "billing_source"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["group_by"] == ["billing_source"]
    assert [(e["group"]["billing_source"], e["totals"]["input_tokens"]) for e in body["entries"]] == [
        ("byok", 120),
        ("platform", 30),
    ]
    # Cost: integer micro-USD in the totals, and the same as an exact decimal of USD.
    assert [(e["totals"]["cost_micro_usd"], e["cost_usd"]) for e in body["entries"]] == [
        (0, "0.00"),
        (1_234_567, "1.234567"),
    ]
    whole = (await client.get(url, params={"since": "2h"}, headers=admin_headers)).json()
    assert [e["totals"]["segments"] for e in whole["entries"]] == [3]

    bad = await client.get(url, params={"group_by": "colour"}, headers=admin_headers)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "group_by"
    when = await client.get(url, params={"since": "last tuesday"}, headers=admin_headers)
    assert when.status_code == 400 and when.json()["error"]["param"] == "since"
    for too_far in ("99999999999d", "999999999d"):
        far = await client.get(url, params={"since": too_far}, headers=admin_headers)
        assert far.status_code == 400 and far.json()["error"]["param"] == "since"
    missing = await client.get("/admin/v1/orgs/org_nope/usage", headers=admin_headers)
    assert missing.status_code == 404
    assert (await client.get(url)).status_code == 401


async def test_cli_usage_table_and_json(db: Database, db_url: str, unique_prefix: str) -> None:
    name = f"usage-cli-{unique_prefix}"
    org_id = await seeded_org(db, name)
    shown = await run_cli(db_url, "usage", "--org", name, "--since", "30m")
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[1].split()[:3] == ["billing_source", "segment", "segments"]
    assert lines[1].split()[-1] == "cost_usd"
    assert lines[2].split()[:4] == ["byok", "llm", "1", "120"] and lines[2].split()[-1] == "0.00"
    assert lines[3].split()[0] == "platform" and lines[3].split()[-1] == "1.234567"
    as_json = await run_cli(db_url, "usage", "--org", org_id, "--since", "2h", "--by", "", "--json")
    payload = json.loads(as_json.output)
    assert payload["org_id"] == org_id and payload["entries"][0]["totals"]["input_tokens"] == 155
    [whole] = payload["entries"]
    assert (whole["totals"]["cost_micro_usd"], whole["cost_usd"]) == (1_234_570, "1.23457")
    refused = await run_cli(db_url, "usage", "--org", name, "--by", "colour", "--json")
    assert (
        refused.exit_code == 1 and "cannot group by colour" in json.loads(refused.output)["error"]["message"]
    )
    unknown = await run_cli(db_url, "usage", "--org", "no-such-org")
    assert unknown.exit_code == 1
