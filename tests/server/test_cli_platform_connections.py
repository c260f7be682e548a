"""`patchbay connection ... --platform`: the operator's connections from the command line."""

from __future__ import annotations

import json
import secrets

import pytest

from server.db import Database
from tests.server.test_cli import run_cli


@pytest.fixture
async def org(db: Database, db_url: str) -> str:
    return (await run_cli(db_url, "org", "create", "acme")).output.strip()


async def test_add_list_update_revoke_delete_platform_connections(db_url: str, org: str) -> None:
    key = "sk-test-CANARY-" + secrets.token_hex(12)
    added = await run_cli(
        db_url,
        "connection",
        "add",
        "--platform",
        "--provider",
        "openai_compatible",
        "--name",
        "plat",
        "--base-url",
        "https://llm.example/v1",
        "--model",
        "llama",
        "--price",
        "llama=0.59/0.79",
        "--key-stdin",
        "--json",
        input=key + "\n",
    )
    assert added.exit_code == 0, added.output
    info = json.loads(added.output)
    assert (info["profile_id"], info["org_id"], info["billing_source"]) == (
        "openai_compatible:plat",
        None,
        "platform",
    )
    assert info["models"] == [
        {"id": "llama", "capabilities": ["text"], "price": {"input": "0.59", "output": "0.79"}}
    ]
    assert key not in added.output

    named = await run_cli(
        db_url, "connection", "add", "--platform", "--provider", "openai", "--key-stdin", "--json", input=key
    )
    assert json.loads(named.output)["profile_id"] == "openai:platform"  # never `default`, an org's usual name

    listed = await run_cli(db_url, "connection", "list", "--platform")
    assert listed.output.splitlines()[0].startswith("openai:platform\tactive\t#0\tplatform\t")
    assert "openai_compatible:plat" in listed.output and key not in listed.output
    assert (await run_cli(db_url, "connection", "list", "--org", org)).output.strip() == "no connections"

    updated = await run_cli(
        db_url,
        "connection",
        "update",
        "--platform",
        "openai_compatible:plat",
        "--disable",
        "--price",
        "llama=1/2",
        "--json",
    )
    assert updated.exit_code == 0, updated.output
    body = json.loads(updated.output)
    assert body["status"] == "disabled" and body["models"][0]["price"] == {"input": "1.00", "output": "2.00"}

    shown = await run_cli(db_url, "connection", "show", "--platform", "openai:platform", "--json")
    assert json.loads(shown.output)["billing_source"] == "platform"
    revoked = await run_cli(db_url, "connection", "revoke", "--platform", "openai:platform", "--json")
    assert json.loads(revoked.output)["status"] == "revoked"
    deleted = await run_cli(db_url, "connection", "delete", "--platform", "openai:platform")
    assert deleted.exit_code == 0 and "deleted openai:platform" in deleted.output
    missing = await run_cli(db_url, "connection", "show", "--platform", "openai:platform", "--json")
    assert missing.exit_code == 1 and json.loads(missing.output)["error"]["type"] == "not_found"


async def test_platform_and_org_are_exclusive_and_one_is_needed(db_url: str, org: str) -> None:
    both = await run_cli(db_url, "connection", "add", "--platform", "--org", org, "--provider", "openai")
    assert both.exit_code == 2
    assert "--platform and --org are exclusive" in both.output
    neither = await run_cli(db_url, "connection", "list")
    assert neither.exit_code == 2 and "--org ORG, or --platform" in neither.output
    # Nothing was read from stdin or written: the refusal comes first.
    listed = await run_cli(db_url, "connection", "list", "--platform", "--json")
    assert json.loads(listed.output) == []


async def test_org_connections_do_not_reach_platform_ones(db_url: str, org: str) -> None:
    await run_cli(
        db_url,
        "connection",
        "add",
        "--platform",
        "--provider",
        "openai",
        "--key-stdin",
        input="sk-platform-0123456789",
    )
    ours = await run_cli(db_url, "connection", "revoke", "--org", org, "openai:platform", "--json")
    assert ours.exit_code == 1 and json.loads(ours.output)["error"]["type"] == "not_found"
