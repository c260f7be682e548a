"""`patchbay apikey` end to end: real database, `--json` output, exit codes, the text snippet."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from server.db import Database
from tests.server.test_cli import run_cli


@pytest.fixture
async def org(db: Database, db_url: str) -> str:
    created = await run_cli(db_url, "org", "create", "acme", "--json")
    org_id: str = json.loads(created.output)["id"]
    made = await run_cli(
        db_url, "agent", "create", "--org", org_id, "support", "--chain", "chat=openai/gpt-4o-mini"
    )
    assert made.exit_code == 0, made.output
    return org_id


async def test_create_with_every_field_then_list_and_revoke(db_url: str, org: str) -> None:
    made = await run_cli(
        db_url, "apikey", "create", "--org", "acme", "--name", "support bot", "--agent", "support",
        "--models", "openai/gpt-4o-mini, sonnet", "--expires", "30d", "--json",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    issued = json.loads(made.output)
    assert issued["key"].startswith("pb-") and issued["key"].startswith(issued["prefix"])
    assert (issued["name"], issued["agent"], issued["models"]) == (
        "support bot",
        "support",
        ["openai/gpt-4o-mini", "sonnet"],
    )
    expires = datetime.fromisoformat(issued["expires_at"]) - datetime.fromisoformat(issued["created_at"])
    assert expires == timedelta(days=30)
    assert issued["status"] == "active" and issued["last_used_at"] is None

    listed = await run_cli(db_url, "apikey", "list", "--org", org, "--json")
    rows = json.loads(listed.output)
    assert rows == [{k: v for k, v in issued.items() if k != "key"}]
    assert issued["key"] not in listed.output

    table = (await run_cli(db_url, "apikey", "list", "--org", org)).output.splitlines()
    assert table[0].split() == [
        "ID",
        "NAME",
        "PREFIX",
        "STATUS",
        "AGENT",
        "MODELS",
        "EXPIRES",
        "(UTC)",
        "LAST",
        "USED",
        "(UTC)",
        "SPENT/LIMIT",
        "(USD,",
        "MONTH)",
    ]
    assert issued["id"] in table[1] and "support bot" in table[1] and "openai/gpt-4o-mini,sonnet" in table[1]
    assert issued["key"] not in "\n".join(table)

    revoked = await run_cli(db_url, "apikey", "revoke", "--org", org, issued["id"], "--json")
    assert revoked.exit_code == 0
    assert json.loads(revoked.output)["status"] == "revoked"
    again = (await run_cli(db_url, "apikey", "list", "--org", org)).output
    assert "revoked" in again


async def test_text_mode_prints_the_key_first_and_an_sdk_snippet(db_url: str, org: str) -> None:
    made = await run_cli(db_url, "apikey", "create", "--org", org, "--name", "ci")
    assert made.exit_code == 0
    lines = made.output.splitlines()
    key = lines[0]
    assert key.startswith("pb-")
    assert "from openai import OpenAI" in made.output
    assert f'/v1", api_key="{key}")' in made.output and "client = OpenAI(base_url=" in made.output


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        (["--name", ""], "invalid_request"),
        (["--name", "ci", "--expires", "soon"], "invalid_request"),
        (["--name", "ci", "--expires", "2001-01-01"], "invalid_request"),
        (["--name", "ci", "--models", ",".join(f"m{i}" for i in range(101))], "invalid_request"),
        (["--name", "ci", "--agent", "ghost"], "not_found"),
    ],
)
async def test_bad_values_exit_1_with_a_typed_error(
    db_url: str, org: str, args: list[str], kind: str
) -> None:
    result = await run_cli(db_url, "apikey", "create", "--org", org, *args, "--json")
    assert result.exit_code == 1, result.output
    assert json.loads(result.output)["error"]["type"] == kind


async def test_a_duplicate_name_is_a_conflict_and_a_missing_one_a_usage_error(db_url: str, org: str) -> None:
    assert (await run_cli(db_url, "apikey", "create", "--org", org, "--name", "ci")).exit_code == 0
    dup = await run_cli(db_url, "apikey", "create", "--org", org, "--name", "ci", "--json")
    assert dup.exit_code == 1 and json.loads(dup.output)["error"]["type"] == "conflict"
    missing = await run_cli(db_url, "apikey", "create", "--org", org)
    assert missing.exit_code == 2 and "--name" in missing.output
    unknown = await run_cli(db_url, "apikey", "revoke", "--org", org, "key_nope", "--json")
    assert unknown.exit_code == 1 and json.loads(unknown.output)["error"]["type"] == "not_found"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("command", ["create", "list", "revoke"])
async def test_every_command_has_help_and_json(db_url: str, command: str) -> None:
    result = await run_cli(db_url, "apikey", command, "--help")
    assert result.exit_code == 0 and "--json" in result.output
