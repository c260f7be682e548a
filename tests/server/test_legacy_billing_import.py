"""`patchbay migrate legacy-billing`: the fixture file, a re-run, bad lines, --strict, --dry-run,
progress and exit codes, on both databases."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner, Result

from billing.ledger import Ledger
from server import accounts
from server.cli import cli
from server.db import Database
from tests.billing.ledger_fakes import assert_consistent, entry_count

FIXTURE = Path(__file__).parents[1] / "billing" / "data" / "legacy_billing.jsonl"
USD = 1_000_000


async def run(db_url: str, tmp_path: Path, *args: str) -> Result:
    env = {"PATCHBAY_DATABASE_URL": db_url, "PATCHBAY_DATA_DIR": str(tmp_path)}
    argv = ["migrate", "legacy-billing", *args]
    return await asyncio.to_thread(CliRunner().invoke, cli, argv, env=env, catch_exceptions=False)


async def seed(db: Database, *org_ids: str, grant: int = 2_000 * USD) -> Ledger:
    async with db.session() as session:
        for org_id in org_ids:
            await accounts.create_org(session, org_id.removeprefix("org_").title(), org_id=org_id)
    ledger = Ledger(db.sessions)
    for org_id in org_ids:
        await ledger.grant(org_id, grant, "legacy-credits")
    return ledger


async def test_the_fixture_is_imported_once_and_a_rerun_changes_nothing(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    ledger = await seed(db, "org_acme", "org_globex")
    result = await run(db_url, tmp_path, str(FIXTURE), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {k: report[k] for k in ("imported", "skipped_duplicate", "skipped_charged", "errors")} == {
        "imported": 6,
        "skipped_duplicate": 0,
        "skipped_charged": 0,
        "errors": 0,
    }
    assert (report["imported_usd"], report["imported_micro_usd"]) == ("1234.583362", 1_234_583_362)
    assert report["lines"] == [] and report["dry_run"] is False and report["aborted"] is False
    acme = await assert_consistent(db, ledger, "org_acme")
    globex = await assert_consistent(db, ledger, "org_globex")
    assert acme.balance == 2_000 * USD - 11_735
    assert globex.balance == 2_000 * USD - 1_234_571_627
    count = await entry_count(db)

    again = await run(db_url, tmp_path, str(FIXTURE))
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[-1] == (
        "imported 0 row(s) (0.00 USD); skipped 6 already imported and 0 charged by Patchbay; 0 error(s)"
    )
    assert "line 5: skipped_duplicate: imported before" in again.stdout
    assert await entry_count(db) == count
    assert (await ledger.balance("org_acme")).balance == acme.balance


async def test_bad_lines_are_reported_by_number_and_the_rest_imported(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    ledger = await seed(db, "org_acme")
    good = FIXTURE.read_text().splitlines()[:2]
    row = json.loads(good[0])
    lines = [
        good[0],
        "{broken",
        json.dumps({**row, "requestId": "r-neg", "costUsd": -1}),
        json.dumps({**row, "requestId": "r-ghost", "orgId": "org_ghost"}),
        json.dumps({k: v for k, v in row.items() if k != "ts"} | {"requestId": "r-nots"}),
        good[0],
        good[1],
    ]
    file = tmp_path / "rows.jsonl"
    file.write_text("\n".join(lines) + "\n")
    result = await run(db_url, tmp_path, str(file), "--json")
    assert result.exit_code == 4, result.output
    report = json.loads(result.stdout)
    assert (report["imported"], report["skipped_duplicate"], report["errors"]) == (2, 1, 4)
    by_line = {entry["line"]: entry for entry in report["lines"]}
    assert sorted(by_line) == [2, 3, 4, 5, 6]
    assert "not valid JSON" in by_line[2]["message"]
    assert "costUsd must not be negative" in by_line[3]["message"]
    assert "org 'org_ghost' does not exist" in by_line[4]["message"]
    assert by_line[5]["message"] == "missing field(s): ts"
    assert (by_line[6]["status"], by_line[6]["message"]) == ("skipped_duplicate", "same as line 1")
    assert (await assert_consistent(db, ledger, "org_acme")).balance == 2_000 * USD - 11_709 - 25

    text = await run(db_url, tmp_path, str(file))
    assert text.exit_code == 4
    assert "line 3: error: costUsd must not be negative" in text.stdout


async def test_strict_writes_nothing_when_a_line_is_bad(db: Database, db_url: str, tmp_path: Path) -> None:
    await seed(db, "org_acme", "org_globex")
    file = tmp_path / "rows.jsonl"
    file.write_text(FIXTURE.read_text() + '{"orgId": "org_acme"}\n')
    count = await entry_count(db)
    result = await run(db_url, tmp_path, str(file), "--strict", "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["aborted"] is True and report["imported"] == 0 and report["errors"] == 1
    assert report["lines"][0]["line"] == 7 and "missing field(s)" in report["lines"][0]["message"]
    assert await entry_count(db) == count
    clean = await run(db_url, tmp_path, str(FIXTURE), "--strict")
    assert clean.exit_code == 0 and await entry_count(db) == count + 6


async def test_a_dry_run_reports_without_writing(db: Database, db_url: str, tmp_path: Path) -> None:
    await seed(db, "org_acme", "org_globex")
    count = await entry_count(db)
    result = await run(db_url, tmp_path, str(FIXTURE), "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("would import 6 row(s) (1234.583362 USD)")
    assert await entry_count(db) == count


async def test_a_dry_run_checks_the_balance_against_the_whole_file_whatever_the_batch_size(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    await seed(db, "org_acme", grant=11_734)  # one micro-dollar short of org_acme's four rows
    file = tmp_path / "acme.jsonl"
    file.write_text("\n".join(FIXTURE.read_text().splitlines()[:4]) + "\n")
    dry = await run(db_url, tmp_path, str(file), "--dry-run", "--batch-size", "1", "--json")
    real = await run(db_url, tmp_path, str(file), "--batch-size", "1", "--json")
    for result in (dry, real):
        assert result.exit_code == 4, result.output
    dry_report, real_report = json.loads(dry.stdout), json.loads(real.stdout)
    assert [(x["line"], x["status"]) for x in dry_report["lines"]] == [(3, "error")]
    assert dry_report["lines"] == real_report["lines"]
    assert dry_report["imported_micro_usd"] == real_report["imported_micro_usd"] == 11_734


async def test_a_long_file_reports_progress_on_stderr(db: Database, db_url: str, tmp_path: Path) -> None:
    await seed(db, "org_acme", "org_globex")
    result = await run(db_url, tmp_path, str(FIXTURE), "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == ["[2/6] rows", "[4/6] rows", "[6/6] rows"]
    quiet = await run(db_url, tmp_path, str(FIXTURE), "--batch-size", "2", "--json")
    assert quiet.stderr == "" and json.loads(quiet.stdout)["skipped_duplicate"] == 6


async def test_usage_mistakes_exit_2(db_url: str, tmp_path: Path) -> None:
    missing = await run(db_url, tmp_path, str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 2
    bad_batch = await run(db_url, tmp_path, str(FIXTURE), "--batch-size", "0")
    assert bad_batch.exit_code == 2
