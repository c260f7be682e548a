"""`patchbay migrate legacy-settings`: the sample document, a malformed line, and a re-run."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from billing.spend import BudgetExceededError
from billing.spend_caps import SpendCaps
from billing.spend_store import get_cap
from foundation.audit import AuditEvent, MemoryAudit
from foundation.orgs import Org
from routing.tables import Connection, OrgAISettings
from server.cli import cli
from server.db import Database
from server.legacy import parse_lines
from server.settings import Settings
from server.vault_keys import build_vault

CANARY = "sk-or-v1-test-CANARY-" + secrets.token_hex(8)
SAMPLE = {
    "orgId": "org_1",
    "openrouterApiKey": CANARY,
    "defaultModel": "anthropic/claude-sonnet-4",
    "enabledModels": ["anthropic/claude-sonnet-4", "openai/gpt-4o"],
    "byokEnabled": False,
    "monthlyBudgetUsd": 50,
}


async def run_import(db_url: str, data_dir: Path, file: Path, *extra: str) -> Result:
    env = {"PATCHBAY_DATABASE_URL": db_url, "PATCHBAY_DATA_DIR": str(data_dir)}
    args = ["migrate", "legacy-settings", str(file), *extra]
    return await asyncio.to_thread(CliRunner().invoke, cli, args, env=env, catch_exceptions=False)


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_sample_is_imported_with_the_key_encrypted(db: Database, db_url: str, tmp_path: Path) -> None:
    file = write_lines(tmp_path / "legacy.jsonl", json.dumps(SAMPLE))
    result = await run_import(db_url, tmp_path, file, "--json")
    assert result.exit_code == 0, result.output
    assert CANARY not in result.output
    report = json.loads(result.output)
    assert report["rejected"] == []
    assert report["orgs"][0]["org_id"] == "org_1" and report["orgs"][0]["changed"] is True

    async with db.session() as s:
        org = await s.get(Org, "org_1")
        assert org is not None
        settings = await s.get(OrgAISettings, "org_1")
        assert settings is not None
        assert settings.default_model == "openrouter/anthropic/claude-sonnet-4"
        assert settings.allowed_models == ["openrouter/anthropic/claude-sonnet-4", "openrouter/openai/gpt-4o"]
        assert settings.byok_enabled is False
        assert await get_cap(s, "org_1") == 50_000_000  # the enforced monthly budget, micro-USD
        conn = (await s.scalars(select(Connection).where(Connection.org_id == "org_1"))).one()
        assert conn.profile_id == "openrouter:legacy"
        assert conn.credential_source == "org_key"
        assert conn.secret_id is not None
        assert conn.key_fingerprint is not None and CANARY not in conn.key_fingerprint
        assert conn.key_fingerprint.endswith(CANARY[-4:])

    vault = build_vault(Settings(database_url=db_url, data_dir=tmp_path), db, MemoryAudit())
    credential = await vault.credential(conn.secret_id, org_id="org_1", owner_id=conn.id, field="api_key")
    assert credential.reveal("test") == CANARY

    if db_url.startswith("sqlite"):
        db_file = Path(db_url.split("///", 1)[1])
        for path in (db_file, db_file.with_name(db_file.name + "-wal")):
            if path.exists():
                assert CANARY.encode() not in path.read_bytes()


async def test_rerun_changes_nothing(db: Database, db_url: str, tmp_path: Path) -> None:
    file = write_lines(tmp_path / "legacy.jsonl", json.dumps(SAMPLE))
    assert (await run_import(db_url, tmp_path, file)).exit_code == 0
    async with db.session() as s:
        before_audit = len((await s.scalars(select(AuditEvent.id))).all())
        conn_before = (await s.scalars(select(Connection))).one()
        snapshot = (conn_before.id, conn_before.secret_id, conn_before.key_set_at)

    again = await run_import(db_url, tmp_path, file, "--json")
    assert again.exit_code == 0
    assert [o["changed"] for o in json.loads(again.output)["orgs"]] == [False]

    async with db.session() as s:
        conns = (await s.scalars(select(Connection))).all()
        assert [(c.id, c.secret_id, c.key_set_at) for c in conns] == [snapshot]
        assert len((await s.scalars(select(Org.id))).all()) == 1
        after_audit = (await s.scalars(select(AuditEvent).where(AuditEvent.action == "legacy.import"))).all()
        # Only the first run's import is audited; the re-run wrote no import event.
        assert len(after_audit) == 1
        assert len((await s.scalars(select(AuditEvent.id))).all()) >= before_audit


async def test_changed_key_is_replaced_in_place(db: Database, db_url: str, tmp_path: Path) -> None:
    file = write_lines(tmp_path / "legacy.jsonl", json.dumps(SAMPLE))
    assert (await run_import(db_url, tmp_path, file)).exit_code == 0
    new_key = "sk-or-v1-test-CANARY-" + secrets.token_hex(8)
    write_lines(file, json.dumps(SAMPLE | {"openrouterApiKey": new_key}))
    result = await run_import(db_url, tmp_path, file, "--json")
    assert json.loads(result.output)["orgs"][0]["actions"] == ["replaced key (encrypted)"]
    async with db.session() as s:
        conn = (await s.scalars(select(Connection))).one()
    vault = build_vault(Settings(database_url=db_url, data_dir=tmp_path), db, MemoryAudit())
    assert conn.secret_id is not None
    credential = await vault.credential(conn.secret_id, org_id="org_1", owner_id=conn.id, field="api_key")
    assert credential.reveal("test") == new_key


async def test_bad_lines_are_reported_by_number_and_write_nothing(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    file = write_lines(
        tmp_path / "legacy.jsonl",
        json.dumps(SAMPLE),
        '{"orgId": "org_2", "openrouterApiKey": "sk-or-v1-test-CANARY-x", ',
        json.dumps({"orgId": "org_3", "enabledModels": "not-a-list", "openrouterApiKey": CANARY}),
        "",
        json.dumps({"orgId": "org_4", "defaultModel": "openai/gpt-4o"}),
    )
    result = await run_import(db_url, tmp_path, file, "--json")
    assert result.exit_code == 4
    report = json.loads(result.output)
    assert [r["line"] for r in report["rejected"]] == [2, 3]
    assert "enabledModels" in report["rejected"][1]["message"]
    assert CANARY not in result.output
    assert [o["org_id"] for o in report["orgs"]] == ["org_1", "org_4"]
    async with db.session() as s:
        assert sorted((await s.scalars(select(Org.id))).all()) == ["org_1", "org_4"]
        assert (await s.scalars(select(Connection).where(Connection.org_id == "org_4"))).all() == []


def test_parse_lines_rejects_duplicates_and_non_objects() -> None:
    good, bad = parse_lines(
        [json.dumps(SAMPLE), "[1, 2]", json.dumps(SAMPLE), json.dumps({"orgId": "bad id!"})]
    )
    assert [n for n, _ in good] == [1]
    assert [(e.line, e.message.split(" ")[0]) for e in bad] == [(2, "expected"), (3, "org"), (4, "orgId:")]
    assert CANARY not in repr(good[0][1])


async def test_the_legacy_monthly_budget_is_the_enforced_budget(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    file = write_lines(tmp_path / "legacy.jsonl", json.dumps(SAMPLE | {"monthlyBudgetUsd": 12.75}))
    assert (await run_import(db_url, tmp_path, file)).exit_code == 0
    caps = SpendCaps(db.sessions)
    caps.close(await caps.reserve("org_1", None, 12_750_000), 12_750_000)  # exactly the budget
    with pytest.raises(BudgetExceededError):
        await caps.reserve("org_1", None, 1)

    # A re-run with another budget changes it (and says so); without one it is removed.
    write_lines(file, json.dumps(SAMPLE | {"monthlyBudgetUsd": 20}))
    changed = json.loads((await run_import(db_url, tmp_path, file, "--json")).output)
    assert changed["orgs"][0]["actions"] == ["set monthly_budget"]
    write_lines(file, json.dumps({k: v for k, v in SAMPLE.items() if k != "monthlyBudgetUsd"}))
    assert (await run_import(db_url, tmp_path, file)).exit_code == 0
    async with db.session() as s:
        assert await get_cap(s, "org_1") is None


async def test_a_budget_finer_than_a_micro_dollar_is_a_rejected_line(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    file = write_lines(tmp_path / "legacy.jsonl", json.dumps(SAMPLE | {"monthlyBudgetUsd": "0.0000001"}))
    result = await run_import(db_url, tmp_path, file, "--json")
    assert result.exit_code == 4
    assert "monthlyBudgetUsd" in json.loads(result.output)["rejected"][0]["message"]
