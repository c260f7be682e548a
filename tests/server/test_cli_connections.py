"""`patchbay connection` and `patchbay agent` from the command line, keys from stdin only."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from server.db import Database
from tests.server.test_cli import run_cli


@pytest.fixture
async def org(db: Database, db_url: str) -> str:
    return (await run_cli(db_url, "org", "create", "acme")).output.strip()


async def test_add_list_set_key_revoke_with_canary(
    db_url: str, org: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATCHBAY_DATA_DIR", str(tmp_path))
    key = "sk-test-CANARY-" + secrets.token_hex(12)
    added = await run_cli(
        db_url,
        "connection",
        "add",
        "--org",
        "acme",
        "--provider",
        "openai",
        "--key-stdin",
        "--json",
        input=key + "\n",
    )
    assert added.exit_code == 0, added.output
    info = json.loads(added.output)
    assert info["profile_id"] == "openai:default" and info["key"]["fingerprint"].endswith(key[-4:])
    assert key not in added.output

    listed = await run_cli(db_url, "connection", "list", "--org", org)
    assert "openai:default" in listed.output and key not in listed.output

    new_key = "sk-test-CANARY-" + secrets.token_hex(12)
    replaced = await run_cli(
        db_url,
        "connection",
        "set-key",
        "--org",
        org,
        "openai:default",
        "--key-stdin",
        "--json",
        input=new_key,
    )
    assert json.loads(replaced.output)["id"] == info["id"]
    assert new_key not in replaced.output

    empty = await run_cli(
        db_url, "connection", "set-key", "--org", org, "openai:default", "--key-stdin", "--json", input="\n"
    )
    assert empty.exit_code == 1
    huge = await run_cli(
        db_url,
        "connection",
        "set-key",
        "--org",
        org,
        "openai:default",
        "--key-stdin",
        "--json",
        input="k" * 4097,
    )
    assert huge.exit_code == 1 and "4096" in huge.output

    revoked = await run_cli(db_url, "connection", "revoke", "--org", org, "openai:default", "--json")
    assert json.loads(revoked.output)["status"] == "revoked"

    refused = await run_cli(
        db_url,
        "connection",
        "add",
        "--org",
        org,
        "--provider",
        "openai_compatible",
        "--name",
        "lab",
        "--base-url",
        "http://169.254.169.254/v1",
        "--json",
    )
    assert refused.exit_code == 1
    assert json.loads(refused.output)["error"]["type"] == "base_url_refused"


async def test_agent_create_with_chains(db_url: str, org: str) -> None:
    created = await run_cli(
        db_url,
        "agent",
        "create",
        "--org",
        org,
        "support",
        "--chain",
        "chat=openai/gpt-4o,mylab/llama-3-70b",
        "--chain",
        "voice_turn=anthropic/claude-haiku",
        "--json",
    )
    assert created.exit_code == 0, created.output
    assert json.loads(created.output)["chains"] == {
        "chat": ["openai/gpt-4o", "mylab/llama-3-70b"],
        "voice_turn": ["anthropic/claude-haiku"],
    }
    bad = await run_cli(db_url, "agent", "create", "--org", org, "x", "--chain", "chat", "--json")
    assert bad.exit_code == 2
    key = await run_cli(
        db_url, "apikey", "create", "--org", org, "--name", "support", "--agent", "support", "--json"
    )
    assert json.loads(key.output)["agent"] == "support"


async def test_agent_voice_settings_set_listed_and_cleared(db_url: str, org: str, tmp_path: Path) -> None:
    prompt = tmp_path / "ada.txt"
    prompt.write_text("You are Ada, who books tables at Chez Patchbay.\nBe brief.\n", encoding="utf-8")
    created = await run_cli(
        db_url,
        "agent",
        "create",
        "--org",
        org,
        "ada",
        "--voice",
        "nova",
        "--instructions-file",
        str(prompt),
        "--language",
        "en-gb",
        "--output-format",
        "g711_ulaw",
        "--json",
    )
    assert created.exit_code == 0, created.output
    assert json.loads(created.output)["voice_settings"] == {
        "voice": "nova",
        "instructions": "You are Ada, who books tables at Chez Patchbay.\nBe brief.\n",
        "language": "en-GB",
        "output_format": "g711_ulaw",
    }

    listed = await run_cli(db_url, "agent", "list", "--org", org)
    assert listed.output.splitlines() == [
        "ada\t-\tno chains",
        "  voice nova · language en-GB · output g711_ulaw · instructions 'You are Ada, who books tables at Chez Pa…' (58 chars)",
    ]

    updated = await run_cli(
        db_url, "agent", "update", "--org", org, "ada", "--voice", "", "--instructions", "Be Ada.", "--json"
    )
    assert json.loads(updated.output)["voice_settings"] == {
        "voice": None,
        "instructions": "Be Ada.",
        "language": "en-GB",
        "output_format": "g711_ulaw",
    }
    cleared = await run_cli(
        db_url, "agent", "update", "--org", org, "ada", "--language", "", "--output-format", ""
    )
    assert cleared.output.splitlines() == ["ada\t-\tno chains", "  instructions 'Be Ada.' (7 chars)"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--language", "english"), "'english' is not a language code such as en or en-US"),
        (("--output-format", "mp3"), "unknown output format 'mp3'; use one of pcm16, g711_ulaw, g711_alaw"),
        (("--voice", "v" * 129), "a voice id is 1-128 printable characters"),
    ],
)
async def test_agent_voice_settings_are_validated(
    db_url: str, org: str, args: tuple[str, ...], message: str
) -> None:
    await run_cli(db_url, "agent", "create", "--org", org, "ada", "--voice", "nova")
    refused = await run_cli(db_url, "agent", "update", "--org", org, "ada", *args, "--json")
    assert refused.exit_code == 1
    assert json.loads(refused.output)["error"]["message"] == message
    listed = await run_cli(db_url, "agent", "list", "--org", org, "--json")
    assert json.loads(listed.output)[0]["voice_settings"]["voice"] == "nova"


async def test_instructions_from_one_place_only(db_url: str, org: str, tmp_path: Path) -> None:
    prompt = tmp_path / "p.txt"
    prompt.write_text("x", encoding="utf-8")
    both = await run_cli(
        db_url,
        "agent",
        "create",
        "--org",
        org,
        "ada",
        "--instructions",
        "y",
        "--instructions-file",
        str(prompt),
    )
    assert both.exit_code == 2 and "not both" in both.output
    prompt.write_bytes(b"\xff\xfe not text")
    binary = await run_cli(db_url, "agent", "create", "--org", org, "ada", "--instructions-file", str(prompt))
    assert binary.exit_code == 2 and "UTF-8" in binary.output


async def test_env_reference_outside_the_allowlist_is_refused(db_url: str, org: str) -> None:
    for name in ("PATCHBAY_MASTER_KEY", "AWS_SECRET_ACCESS_KEY"):
        refused = await run_cli(
            db_url, "connection", "add", "--org", org, "--provider", "openai", "--env-reference", name
        )
        assert refused.exit_code == 1
        assert name in refused.output and "can" in refused.output
