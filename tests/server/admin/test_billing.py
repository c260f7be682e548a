"""The billing admin API on both backends: balance and holds, the ledger (pages, kinds, CSV equal
to `patchbay ledger --csv`), costs by source / provider / agent, grants (operator only,
idempotent), and who may read what."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from billing.ledger import Ledger
from billing.usage import Segment, UsageSegment, new_usage_recorder
from foundation.db import utcnow
from providers.contract import BillingSource
from providers.types import Usage
from server.db import Database
from tests.server.access.conftest import OPERATOR, mint_token
from tests.server.test_cli import run_cli

PLATFORM, BYOK, PRIVATE = BillingSource.PLATFORM, BillingSource.BYOK, BillingSource.PRIVATE


def ledger_of(app: FastAPI) -> Ledger:
    ledger: Ledger = app.state.services.ledger
    return ledger


async def make_org(client: httpx.AsyncClient, name: str) -> str:
    r = await client.post("/admin/v1/orgs", json={"name": name}, headers=OPERATOR)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def grant(
    client: httpx.AsyncClient, org: str, amount: object, key: str | None, **extra: object
) -> httpx.Response:
    headers = {**OPERATOR, **({"Idempotency-Key": key} if key is not None else {})}
    return await client.post(
        f"/admin/v1/orgs/{org}/billing/grants", json={"amount": amount, **extra}, headers=headers
    )


async def test_grants_are_the_operators_and_replays_change_nothing(client: httpx.AsyncClient) -> None:
    org = await make_org(client, "acme")
    first = await grant(client, org, "25.50", "g-1", reason="welcome")
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["replayed"] is False and body["idempotency_key"] == "g-1"
    assert (body["entry"]["kind"], body["entry"]["amount_usd"], body["entry"]["amount_micro_usd"]) == (
        "grant",
        "25.50",
        25_500_000,
    )
    assert body["entry"]["details"] == {"reason": "welcome"}
    assert (body["balance"]["balance"], body["balance"]["available_micro_usd"]) == ("25.50", 25_500_000)

    again = await grant(client, org, "25.50", "g-1", reason="welcome")
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert again.json()["entry"]["id"] == body["entry"]["id"]
    assert again.json()["balance"]["balance_micro_usd"] == 25_500_000
    # The same key for another amount is a conflict, not a second grant.
    other = await grant(client, org, "30", "g-1")
    assert other.status_code == 409 and "g-1" in other.json()["error"]["message"]
    whole = await grant(client, org, 2, "g-2")  # a whole number of USD is fine, a float is not
    assert whole.status_code == 201 and whole.json()["balance"]["balance"] == "27.50"

    refusals = {
        "no key": (await grant(client, org, "1", None), 400, "Idempotency-Key"),
        "float": (await grant(client, org, 1.5, "g-3"), 400, "amount"),
        "too precise": (await grant(client, org, "0.0000001", "g-4"), 400, "amount"),
        "zero": (await grant(client, org, "0", "g-5"), 400, "amount"),
        "negative": (await grant(client, org, "-5", "g-6"), 400, "amount"),
        "sweeper key": (await grant(client, org, "1", "expire:x"), 400, "idempotency_key"),
    }
    for why, (response, status, param) in refusals.items():
        assert response.status_code == status, (why, response.text)
        assert param in response.json()["error"]["param"], why
    balance = (await client.get(f"/admin/v1/orgs/{org}/billing/balance", headers=OPERATOR)).json()
    assert balance["balance_micro_usd"] == 27_500_000
    missing = await grant(client, "org_nope", "1", "g-7")
    assert missing.status_code == 404

    # The grant is in the audit log, by whom.
    audit = (await client.get(f"/admin/v1/orgs/{org}/audit", headers=OPERATOR)).json()
    grants = [e for e in audit if e["action"] == "credits.grant"]
    assert len(grants) == 2 and {e["actor"] for e in grants} == {"operator"}


async def test_who_may_read_and_grant(client: httpx.AsyncClient) -> None:
    mine, theirs = await make_org(client, "mine"), await make_org(client, "theirs")
    assert (await grant(client, mine, "5", "seed")).status_code == 201
    reads = ("balance", "ledger", "costs")
    for role, may_read in (("viewer", False), ("admin", False), ("billing", True), ("owner", True)):
        token = await mint_token(client, mine, role)
        headers = {"authorization": token["authorization"]}
        for path in reads:
            r = await client.get(f"/admin/v1/orgs/{mine}/billing/{path}", headers=headers)
            assert r.status_code == (200 if may_read else 403), (role, path, r.text)
            if not may_read:
                assert "'billing' permission" in r.json()["error"]["message"]
            # Another org answers exactly as one that does not exist.
            other = await client.get(f"/admin/v1/orgs/{theirs}/billing/{path}", headers=headers)
            nobody = await client.get(f"/admin/v1/orgs/org_nope/billing/{path}", headers=headers)
            assert other.status_code == nobody.status_code == 404, (role, path)
            assert other.json()["error"]["message"].replace(theirs, "X") == nobody.json()["error"][
                "message"
            ].replace("org_nope", "X")
        refused = await client.post(
            f"/admin/v1/orgs/{mine}/billing/grants",
            json={"amount": "1"},
            headers={**headers, "Idempotency-Key": f"try-{role}"},
        )
        assert refused.status_code == 403 and "operator" in refused.json()["error"]["message"], role
    balance = (await client.get(f"/admin/v1/orgs/{mine}/billing/balance", headers=OPERATOR)).json()
    assert balance["balance"] == "5.00"
    assert (await client.get(f"/admin/v1/orgs/{mine}/billing/balance")).status_code == 401


async def test_balance_shows_open_holds_and_the_ledger_pages_newest_first(
    client: httpx.AsyncClient, app: FastAPI, db_url: str
) -> None:
    org = await make_org(client, "ledgered")
    ledger = ledger_of(app)
    for i in range(5):
        assert (await grant(client, org, f"{i + 1}", f"g-{i}")).status_code == 201
    held = await ledger.hold(org, 700_000, "h-1", details={"segment": "llm", "intent": "chat"})
    settled = await ledger.hold(org, 300_000, "h-2")
    await ledger.settle(settled.id, 120_000, "s-2", org_id=org)

    balance = (await client.get(f"/admin/v1/orgs/{org}/billing/balance", headers=OPERATOR)).json()
    assert (balance["balance"], balance["held"], balance["available"]) == ("14.88", "0.70", "14.18")
    assert balance["open_holds"] == 1
    [hold] = balance["holds"]
    assert (hold["hold_id"], hold["amount_usd"], hold["details"]["intent"]) == (held.id, "0.70", "chat")

    url = f"/admin/v1/orgs/{org}/billing/ledger"
    seen: list[dict[str, object]] = []
    cursor = None
    for _ in range(10):
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = await client.get(url, params=params, headers=OPERATOR)
        assert page.status_code == 200, page.text
        seen += page.json()["entries"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 8 and len({e["id"] for e in seen}) == 8
    times = [e["created_at"] for e in seen]
    assert times == sorted(times, reverse=True)
    assert [e["kind"] for e in seen][:3] == ["settle", "hold", "hold"]
    assert sum(int(str(e["effect_micro_usd"])) for e in seen) == 14_880_000

    kinds = (await client.get(url, params={"kind": "grant,settle"}, headers=OPERATOR)).json()["entries"]
    assert sorted({e["kind"] for e in kinds}) == ["grant", "settle"] and len(kinds) == 6
    for params, param in (
        ({"kind": "gift"}, "kind"),
        ({"cursor": "not-ours"}, "cursor"),
        ({"limit": "5000"}, "limit"),
        ({"since": "soon"}, "since"),
    ):
        bad = await client.get(url, params=params, headers=OPERATOR)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == param, (params, bad.text)

    # CSV: the CLI's columns and rows, by ?format=csv or by Accept.
    by_param = await client.get(url, params={"format": "csv"}, headers=OPERATOR)
    by_accept = await client.get(url, headers={**OPERATOR, "accept": "text/csv"})
    assert by_param.headers["content-type"].startswith("text/csv")
    assert "attachment" in by_param.headers["content-disposition"]
    assert by_param.text == by_accept.text
    from_cli = await run_cli(db_url, "ledger", "--org", org, "--csv")
    assert from_cli.exit_code == 0, from_cli.output
    assert by_param.text == from_cli.output
    rows = list(csv.DictReader(io.StringIO(by_param.text)))
    assert [r["kind"] for r in rows] == ["grant"] * 5 + ["hold", "hold", "settle"]
    assert json.loads(rows[0]["details"]) == {} and rows[-1]["amount_usd"] == "0.12"


async def test_costs_by_source_provider_and_agent_with_days(client: httpx.AsyncClient, db: Database) -> None:
    org = await make_org(client, "spender")
    agent = await client.post(
        f"/admin/v1/orgs/{org}/agents", json={"name": "support", "chains": {}}, headers=OPERATOR
    )
    assert agent.status_code == 201, agent.text
    agent_id = agent.json()["id"]
    now = utcnow()
    recorder = new_usage_recorder(db.sessions)
    seeds = (
        (PLATFORM, "openai", agent_id, timedelta(hours=1), 1_250_000),
        (PLATFORM, "anthropic", None, timedelta(days=2), 500_001),
        (BYOK, "openai", agent_id, timedelta(days=2), 10_000),
        (PRIVATE, "local", None, timedelta(hours=2), 0),
        (PLATFORM, "openai", None, timedelta(days=40), 9_000_000),  # outside 30 days
    )
    for source, provider, agent_ref, age, cost in seeds:
        recorder.record(
            UsageSegment(
                org_id=org,
                segment=Segment.LLM,
                provider=provider,
                billing_source=source,
                agent_id=agent_ref,
                tokens=Usage(input_tokens=10, output_tokens=5),
                cost_micro_usd=cost,
                at=now - age,
            )
        )
    await recorder.flush()
    url = f"/admin/v1/orgs/{org}/billing/costs"

    by_source = (await client.get(url, headers=OPERATOR)).json()
    assert (by_source["by"], by_source["total_usd"], by_source["total_micro_usd"]) == (
        "source",
        "1.760001",
        1_760_001,
    )
    assert [(g["key"], g["cost_usd"], g["segments"]) for g in by_source["groups"]] == [
        ("platform", "1.750001", 2),
        ("byok", "0.01", 1),
        ("private", "0.00", 1),
    ]
    two_days_ago, today = (now - timedelta(days=2)).date().isoformat(), now.date().isoformat()
    per_day = {(d["day"], d["key"]): d["cost_micro_usd"] for d in by_source["days"]}
    assert per_day[(two_days_ago, "platform")] == 500_001 and per_day[(two_days_ago, "byok")] == 10_000
    assert sum(per_day.values()) == 1_760_001
    assert {day for day, _ in per_day} <= {
        two_days_ago,
        today,
        (now - timedelta(hours=2)).date().isoformat(),
        (now - timedelta(hours=1)).date().isoformat(),
    }

    by_provider = (await client.get(url, params={"by": "provider"}, headers=OPERATOR)).json()
    assert [(g["key"], g["cost_micro_usd"]) for g in by_provider["groups"]] == [
        ("openai", 1_260_000),
        ("anthropic", 500_001),
        ("local", 0),
    ]
    by_agent = (await client.get(url, params={"by": "agent", "since": "90d"}, headers=OPERATOR)).json()
    assert [(g["key"], g["label"], g["cost_micro_usd"]) for g in by_agent["groups"]] == [
        (None, None, 9_500_001),
        (agent_id, "support", 1_260_000),
    ]
    recent = (await client.get(url, params={"since": "90m"}, headers=OPERATOR)).json()
    assert [g["key"] for g in recent["groups"]] == ["platform"]
    nothing = (
        await client.get(
            url, params={"since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"}, headers=OPERATOR
        )
    ).json()
    assert (nothing["groups"], nothing["days"], nothing["total_usd"]) == ([], [], "0.00")
    bad = await client.get(url, params={"by": "colour"}, headers=OPERATOR)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "query.by"


@pytest.mark.parametrize("path", ["balance", "ledger", "costs"])
async def test_an_org_with_no_ledger_reads_as_zero(client: httpx.AsyncClient, path: str) -> None:
    org = await make_org(client, "new")
    r = await client.get(f"/admin/v1/orgs/{org}/billing/{path}", headers=OPERATOR)
    assert r.status_code == 200, r.text
    body = r.json()
    if path == "balance":
        assert (body["balance"], body["held"], body["available"], body["holds"]) == (
            "0.00",
            "0.00",
            "0.00",
            [],
        )
    elif path == "ledger":
        assert (body["entries"], body["next_cursor"]) == ([], None)
    else:
        assert (body["groups"], body["total_micro_usd"]) == ([], 0)
