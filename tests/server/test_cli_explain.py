"""`patchbay agent explain`: the routing preview from the command line, text and --json, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.db import Database
from tests.server.test_cli import run_cli


@pytest.fixture
async def org(db: Database, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PATCHBAY_DATA_DIR", str(tmp_path))
    org = (await run_cli(db_url, "org", "create", "acme", "--tier", "pro")).output.strip()
    added = await run_cli(
        db_url,
        "connection",
        "add",
        "--org",
        org,
        "--provider",
        "openai",
        "--name",
        "main",
        "--model",
        "plain",
        "--key-stdin",
        input="sk-test-0000\n",
    )
    assert added.exit_code == 0, added.output
    routed = await run_cli(
        db_url, "agent", "routing", "--org", org, "--chain", "chat=xai/grok-4,openai/plain"
    )
    assert routed.exit_code == 0, routed.output
    return org


async def test_explain_in_words_and_json(db_url: str, org: str) -> None:
    text = await run_cli(db_url, "agent", "explain", "--org", org)
    assert text.exit_code == 0, text.output
    assert "chain from org:chat" in text.output
    assert "no connection: the org has no connection that serves 'xai'" in text.output
    assert "first tried: openai/plain" in text.output

    out = await run_cli(db_url, "agent", "explain", "--org", org, "--json", "--all")
    body = json.loads(out.output)
    assert [(r["ref"], r["state"]) for r in body["chain"]] == [
        ("xai/grok-4", "unusable"),
        ("openai/plain", "usable"),
    ]
    assert body["chain"][0]["reasons"][0]["code"] == "skipped:no_connection"
    assert [r["ref"] for r in body["reachable"]] == ["openai/plain"]


async def test_exit_codes(db_url: str, org: str) -> None:
    unusable = await run_cli(
        db_url, "agent", "explain", "--org", org, "--intent", "vision", "--chain", "openai/plain", "--json"
    )
    assert unusable.exit_code == 5
    [ref] = json.loads(unusable.output)["chain"]
    assert ref["reasons"][0]["code"] == "skipped:capability:vision"
    assert (await run_cli(db_url, "agent", "explain", "--org", org, "--intent", "tts")).exit_code == 5
    assert (await run_cli(db_url, "agent", "explain", "--org", org, "--intent", "nope")).exit_code == 2
    ghost = await run_cli(db_url, "agent", "explain", "--org", org, "ghost", "--json")
    assert ghost.exit_code == 1 and json.loads(ghost.output)["error"]["type"] == "not_found"
    assert (await run_cli(db_url, "agent", "explain", "--org", "nobody")).exit_code == 1
    helped = await run_cli(db_url, "agent", "explain", "--help")
    assert helped.exit_code == 0 and "cooling down" in helped.output
