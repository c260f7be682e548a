"""`patchbay credits grant|balance` and `patchbay ledger`: real database, `--json`, exit codes."""

from __future__ import annotations

import csv
import io
import json

import pytest

from server.db import Database
from tests.server.test_cli import run_cli


async def _org(db_url: str) -> str:
    created = await run_cli(db_url, "org", "create", "acme")
    assert created.exit_code == 0, created.output
    return created.stdout.strip()


async def test_grant_prints_its_key_first_and_a_retry_with_it_grants_once(db: Database, db_url: str) -> None:
    org_id = await _org(db_url)
    first = await run_cli(
        db_url, "credits", "grant", "--org", "acme", "--amount", "12.5", "--reason", "welcome", "--json"
    )
    assert first.exit_code == 0, first.output
    payload = json.loads(first.stdout)
    key = payload["idempotency_key"]
    assert key.startswith("grant_") and f"idempotency key: {key}" in first.stderr
    assert payload["replayed"] is False
    assert payload["entry"] | {"id": "-", "created_at": "-"} == {
        "id": "-",
        "created_at": "-",
        "org_id": org_id,
        "kind": "grant",
        "amount_usd": "12.50",
        "amount_micro_usd": 12_500_000,
        "effect_micro_usd": 12_500_000,
        "hold_id": None,
        "idempotency_key": key,
        "details": {"reason": "welcome"},
        "expires_at": None,
    }
    retry = await run_cli(
        db_url, "credits", "grant", "--org", org_id, "--amount", "12.50", "--idempotency-key", key, "--json"
    )
    assert retry.exit_code == 0 and retry.stderr == ""
    again = json.loads(retry.stdout)
    assert again["replayed"] is True and again["entry"]["id"] == payload["entry"]["id"]
    assert again["balance"]["balance_micro_usd"] == 12_500_000

    text = await run_cli(
        db_url, "credits", "grant", "--org", "acme", "--amount", "0.000001", "--idempotency-key", "tiny"
    )
    assert text.exit_code == 0 and text.stdout.startswith("granted: 0.000001 USD")

    balance = await run_cli(db_url, "credits", "balance", "--org", "acme", "--json")
    assert balance.exit_code == 0
    assert json.loads(balance.stdout) == {
        "org_id": org_id,
        "unit": "micro-USD",
        "balance": "12.500001",
        "held": "0.00",
        "available": "12.500001",
        "balance_micro_usd": 12_500_001,
        "held_micro_usd": 0,
        "available_micro_usd": 12_500_001,
        "open_holds": 0,
    }


@pytest.mark.parametrize(
    ("amount", "kind"),
    [
        ("0.0000001", "invalid_amount"),
        ("-5", "invalid_amount"),
        ("0", "invalid_amount"),
        ("ten", "invalid_amount"),
    ],
)
async def test_bad_amounts_exit_1_and_grant_nothing(
    db: Database, db_url: str, amount: str, kind: str
) -> None:
    await _org(db_url)
    result = await run_cli(
        db_url, "credits", "grant", "--org", "acme", f"--amount={amount}", "--idempotency-key", "k", "--json"
    )
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["type"] == kind
    ledger = await run_cli(db_url, "ledger", "--org", "acme", "--json")
    assert json.loads(ledger.stdout) == []


async def test_unknown_orgs_reused_keys_and_an_unmigrated_database(db_url: str) -> None:
    unmigrated = await run_cli(db_url, "credits", "balance", "--org", "acme", "--json")
    assert unmigrated.exit_code == 3 and json.loads(unmigrated.stdout)["error"]["type"] == "not_ready"
    assert (await run_cli(db_url, "db", "upgrade")).exit_code == 0
    missing = await run_cli(db_url, "credits", "balance", "--org", "ghost", "--json")
    assert missing.exit_code == 1 and json.loads(missing.stdout)["error"]["type"] == "not_found"
    await _org(db_url)
    assert (
        await run_cli(db_url, "credits", "grant", "--org", "acme", "--amount", "1", "--idempotency-key", "k")
    ).exit_code == 0
    reused = await run_cli(
        db_url, "credits", "grant", "--org", "acme", "--amount", "2", "--idempotency-key", "k", "--json"
    )
    assert reused.exit_code == 1 and json.loads(reused.stdout)["error"]["type"] == "conflict"


async def test_ledger_lists_entries_as_json_csv_and_text(db: Database, db_url: str) -> None:
    await _org(db_url)
    for key, amount in (("a", "1.25"), ("b", "0.75")):
        assert (
            await run_cli(
                db_url, "credits", "grant", "--org", "acme", "--amount", amount, "--idempotency-key", key
            )
        ).exit_code == 0
    listed = json.loads((await run_cli(db_url, "ledger", "--org", "acme", "--since", "7d", "--json")).stdout)
    assert [(e["kind"], e["amount_usd"], e["idempotency_key"]) for e in listed] == [
        ("grant", "1.25", "a"),
        ("grant", "0.75", "b"),
    ]
    as_csv = await run_cli(db_url, "ledger", "--org", "acme", "--csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [(r["kind"], r["amount_micro_usd"], r["details"]) for r in rows] == [
        ("grant", "1250000", "{}"),
        ("grant", "750000", "{}"),
    ]
    text = await run_cli(db_url, "ledger", "--org", "acme")
    assert text.exit_code == 0 and len(text.stdout.strip().splitlines()) == 3
    future = await run_cli(db_url, "ledger", "--org", "acme", "--since", "2999-01-01T00:00:00", "--json")
    assert json.loads(future.stdout) == []
    bad_since = await run_cli(db_url, "ledger", "--org", "acme", "--since", "last tuesday", "--json")
    assert bad_since.exit_code == 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_usage_errors_exit_2_and_every_command_has_help(db_url: str) -> None:
    both = await run_cli(db_url, "ledger", "--org", "acme", "--csv", "--json")
    assert both.exit_code == 2
    no_amount = await run_cli(db_url, "credits", "grant", "--org", "acme")
    assert no_amount.exit_code == 2
    group = await run_cli(db_url, "credits", "--help")
    assert group.exit_code == 0 and "grant" in group.stdout and "balance" in group.stdout
    for command in (["credits", "grant"], ["credits", "balance"], ["ledger"]):
        result = await run_cli(db_url, *command, "--help")
        assert result.exit_code == 0 and "Usage:" in result.stdout and "--json" in result.stdout
