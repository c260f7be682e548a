"""The CLI as a new user meets it: each refusal or warning says what is wrong and how to fix it."""

from __future__ import annotations

import json

import pytest

from server.db import Database
from tests.server.test_cli import run_cli


@pytest.fixture
async def org(db: Database, db_url: str) -> str:
    return (await run_cli(db_url, "org", "create", "acme")).output.strip()


@pytest.fixture
def private_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATCHBAY_ALLOW_PRIVATE_BASE_URLS", "true")
    monkeypatch.setenv("PATCHBAY_ALLOW_PLAIN_HTTP_BASE_URLS", "true")


async def _mylab(db_url: str, *models: str) -> None:
    args = [f"--model={m}" for m in models]
    added = await run_cli(
        db_url, "connection", "add", "--org", "acme", "--provider", "openai_compatible", "--name", "mylab",
        "--base-url", "http://127.0.0.1:9/v1", *args,
    )  # fmt: skip
    assert added.exit_code == 0, added.output


async def test_no_org_points_to_org_list(db_url: str, org: str) -> None:
    missing = await run_cli(db_url, "connection", "list", "--org", "x")
    assert missing.exit_code == 1
    assert "no org 'x'" in missing.output and "`patchbay org list`" in missing.output


async def test_a_provider_needing_a_key_names_both_ways_to_give_one(db_url: str, org: str) -> None:
    refused = await run_cli(db_url, "connection", "add", "--org", "acme", "--provider", "openai")
    assert refused.exit_code == 2
    assert "OpenAI needs a key" in refused.output
    assert "--key-stdin" in refused.output and "--env-reference" in refused.output


async def test_capabilities_are_declared_with_the_model_and_a_keyless_endpoint_says_so(
    db_url: str, org: str, private_urls: None
) -> None:
    await _mylab(db_url, "llama-3-70b:text,tools,json", "llama3.1:8b")
    shown = await run_cli(db_url, "connection", "show", "--org", "acme", "openai_compatible:mylab")
    assert "models: llama-3-70b:json,text,tools llama3.1:8b:text" in shown.output
    assert "no key: requests go out without credentials" in shown.output
    as_json = json.loads(
        (
            await run_cli(db_url, "connection", "show", "--org", "acme", "openai_compatible:mylab", "--json")
        ).output
    )
    assert as_json["models"] == [
        {"id": "llama-3-70b", "capabilities": ["json", "text", "tools"]},
        {"id": "llama3.1:8b", "capabilities": ["text"]},
    ]
    updated = await run_cli(
        db_url,
        "connection",
        "update",
        "--org",
        "acme",
        "openai_compatible:mylab",
        "--model",
        "llama-3-70b:text,vision",
    )
    assert updated.exit_code == 0 and "models: llama-3-70b:text,vision" in updated.output
    typo = await run_cli(
        db_url,
        "connection",
        "update",
        "--org",
        "acme",
        "openai_compatible:mylab",
        "--model",
        "llama:text,tool",
    )
    assert typo.exit_code == 1 and "unknown capabilities for model 'llama': tool; known: " in typo.output


async def test_a_bare_connection_name_suggests_its_profile_id(
    db_url: str, org: str, private_urls: None
) -> None:
    await _mylab(db_url, "llama-3-70b")
    missing = await run_cli(db_url, "connection", "show", "--org", "acme", "mylab")
    assert missing.exit_code == 1
    assert "no connection 'mylab'; did you mean openai_compatible:mylab?" in missing.output
    unknown = await run_cli(db_url, "connection", "show", "--org", "acme", "nothing")
    assert "`patchbay connection list`" in unknown.output


async def test_routing_prints_text_and_warns_about_refs_requests_would_skip(
    db_url: str, org: str, private_urls: None
) -> None:
    await _mylab(db_url, "llama-3-70b:text", "llama-3-8b")
    saved = await run_cli(
        db_url, "agent", "routing", "--org", "acme", "--chain", "chat=mylab/llama-3-70b,openai/gpt-4o",
        "--chain", "tools=mylab/llama-3-70b", "--default-model", "mylab/nope", "--allow", "mylab/llama-3-8b",
    )  # fmt: skip
    assert saved.exit_code == 0, saved.output
    assert "{" not in saved.output and "None" not in saved.output, "text, not a Python repr"
    assert "chat: mylab/llama-3-70b -> openai/gpt-4o" in saved.output
    assert "allowlist: mylab/llama-3-8b" in saved.output
    warnings = [line for line in saved.output.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 3
    assert "chains.chat: no connection serves openai/gpt-4o; add one for 'openai'" in warnings[0]
    assert (
        "chains.tools: mylab/llama-3-70b lacks the `tools` capability the tools intent needs" in warnings[1]
    )
    assert "--model llama-3-70b:text,tools" in warnings[1]
    assert "default_model: openai_compatible:mylab does not declare model 'nope'" in warnings[2]
    as_json = await run_cli(
        db_url, "agent", "routing", "--org", "acme", "--chain", "tools=mylab/llama-3-70b", "--json"
    )
    assert json.loads(as_json.output)["warnings"] == [warnings[1].removeprefix("warning: ")]
    clean = await run_cli(db_url, "agent", "routing", "--org", "acme", "--chain", "tools=", "--json")
    assert "warnings" not in json.loads(clean.output)
    agent = await run_cli(
        db_url, "agent", "create", "--org", "acme", "bot", "--chain", "chat=anthropic/claude-haiku-4-5"
    )
    assert (
        agent.exit_code == 0
        and "warning: chains.chat: no connection serves anthropic/claude-haiku-4-5" in agent.output
    )
