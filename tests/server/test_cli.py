"""The CLI end to end: real database, real exit codes, `--json` output."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from server.cli import cli
from server.db import Database, head_revision
from server.services import Overrides


async def run_cli(
    db_url: str, *args: str, input: str | None = None, overrides: Overrides | None = None
) -> Result:
    """Run the CLI in process; `overrides` reach the composition root as click's context object."""
    runner = CliRunner()
    env = {"PATCHBAY_DATABASE_URL": db_url}
    return await asyncio.to_thread(
        runner.invoke, cli, list(args), input=input, env=env, catch_exceptions=False, obj=overrides
    )


async def test_db_upgrade_is_idempotent_and_reports(db_url: str) -> None:
    first = await run_cli(db_url, "db", "upgrade", "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.output) == {"from": None, "to": head_revision(), "changed": True}
    again = await run_cli(db_url, "db", "upgrade", "--json")
    assert json.loads(again.output)["changed"] is False
    current = await run_cli(db_url, "db", "current", "--json")
    assert json.loads(current.output)["up_to_date"] is True


@pytest.mark.parametrize("command", [("upgrade",), ("current",), ("downgrade", "base", "--yes")])
async def test_db_commands_say_an_unreachable_database_with_exit_3(command: tuple[str, ...]) -> None:
    closed = "postgresql+asyncpg://postgres@127.0.0.1:1/test"  # nothing listens on port 1
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["db", *command, "--json"], env={"PATCHBAY_DATABASE_URL": closed}
    )
    assert result.exit_code == 3, result.output
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "not_ready" and "cannot reach the database" in error["message"]


async def test_commands_refuse_an_unmigrated_database_with_exit_3(db_url: str) -> None:
    result = await run_cli(db_url, "org", "create", "acme", "--json")
    assert result.exit_code == 3
    assert json.loads(result.output)["error"]["type"] == "not_ready"


async def test_org_and_apikey_lifecycle(db: Database, db_url: str) -> None:
    created = await run_cli(db_url, "org", "create", "acme", "--tier", "agency")
    assert created.exit_code == 0, created.output
    org_id = created.output.strip()
    assert org_id.startswith("org_")

    dup = await run_cli(db_url, "org", "create", "acme", "--json")
    assert dup.exit_code == 1
    assert json.loads(dup.output)["error"]["type"] == "conflict"

    listed = json.loads((await run_cli(db_url, "org", "list", "--json")).output)
    assert [(o["id"], o["tier"]) for o in listed] == [(org_id, "agency")]

    key = await run_cli(db_url, "apikey", "create", "--org", "acme", "--name", "ci")
    assert key.exit_code == 0
    plaintext = key.output.splitlines()[0]
    assert plaintext.startswith("pb-") and len(plaintext) > 40

    keys = await run_cli(db_url, "apikey", "list", "--org", org_id, "--json")
    rows = json.loads(keys.output)
    assert len(rows) == 1 and plaintext not in keys.output
    revoked = await run_cli(db_url, "apikey", "revoke", "--org", org_id, rows[0]["id"], "--json")
    assert json.loads(revoked.output)["revoked_at"] is not None

    missing_agent = await run_cli(
        db_url, "apikey", "create", "--org", "acme", "--name", "bot", "--agent", "ghost", "--json"
    )
    assert missing_agent.exit_code == 1
    assert json.loads(missing_agent.output)["error"]["type"] == "not_found"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_usage_errors_exit_2_and_help_works(db_url: str) -> None:
    bad_tier = await run_cli(db_url, "org", "create", "x", "--tier", "platinum")
    assert bad_tier.exit_code == 2
    for args in (
        ["--help"],
        ["org", "create", "--help"],
        ["apikey", "create", "--help"],
        ["db", "upgrade", "--help"],
    ):
        result = await run_cli(db_url, *args)
        assert result.exit_code == 0 and "Usage:" in result.output


async def run_patchbay(env: dict[str, str], *args: str, input: str = "") -> tuple[int, str, str]:
    """The console script's entry point in its own process: exit code, stdout, stderr."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PATCHBAY_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from server.cli import main; main()",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**clean, **env},
    )
    out, err = await proc.communicate(input.encode())
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_commands_log_json_to_stderr_and_keep_stdout_for_json(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    assert (await run_cli(db_url, "org", "create", "acme")).exit_code == 0
    key = "sk-test-CANARY-" + secrets.token_hex(12)
    env = {"PATCHBAY_DATABASE_URL": db_url, "PATCHBAY_DATA_DIR": str(tmp_path / "data")}
    args = ("connection", "add", "--org", "acme", "--provider", "openai", "--key-stdin", "--json")
    # The first key stored generates the vault's master key file, which the library warns about.
    code, out, err = await run_patchbay(env, *args, input=key)
    assert code == 0, err
    assert json.loads(out)["profile_id"] == "openai:default"
    lines = [json.loads(line) for line in err.splitlines()]
    [warning] = [line for line in lines if line["msg"].startswith("generated a new vault master key file")]
    assert warning["level"] == "warning" and warning["logger"] == "providers.vault.keyring"
    assert warning["path"] == str((tmp_path / "data" / "master.key").resolve())
    assert key not in out + err

    quiet = {**env, "PATCHBAY_DATA_DIR": str(tmp_path / "quiet"), "PATCHBAY_LOG_LEVEL": "error"}
    code, out, err = await run_patchbay(quiet, *args, "--name", "second", input=key)
    assert code == 0, err
    assert json.loads(out)["profile_id"] == "openai:second" and err == ""
