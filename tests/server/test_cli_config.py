"""`patchbay config history|rollback` and `patchbay db downgrade` end to end: real database,
exit codes, `--json`."""

from __future__ import annotations

import json

import pytest
from alembic.script import ScriptDirectory

from server.db import Database, alembic_config, head_revision
from tests.server.test_cli import run_cli


async def test_history_lists_changes_and_rollback_restores_the_chain(db: Database, db_url: str) -> None:
    assert (await run_cli(db_url, "org", "create", "acme")).exit_code == 0
    first = await run_cli(db_url, "agent", "routing", "--org", "acme", "--chain", "chat=openai/gpt-4o")
    assert first.exit_code == 0, first.output
    second = await run_cli(
        db_url, "agent", "routing", "--org", "acme", "--chain", "chat=mistral/mistral-large"
    )
    assert second.exit_code == 0, second.output

    listed = await run_cli(db_url, "config", "history", "--org", "acme", "--json")
    assert listed.exit_code == 0, listed.output
    versions = json.loads(listed.output)["versions"]
    assert [v["actor"] for v in versions] == ["cli", "cli"]
    newest, older = versions
    assert newest["version"] > older["version"]
    assert newest["changes"] == [
        "routing.chains: {'chat': ['openai/gpt-4o']} -> {'chat': ['mistral/mistral-large']}"
    ]

    text = await run_cli(db_url, "config", "history", "--org", "acme")
    assert f"v{newest['version']}" in text.output and "routing.chains" in text.output

    back = await run_cli(
        db_url, "config", "rollback", "--org", "acme", "--to", str(older["version"]), "--json"
    )
    assert back.exit_code == 0, back.output
    result = json.loads(back.output)
    assert result["not_restored"] == [] and result["new_version"] > newest["version"]
    shown = await run_cli(
        db_url, "config", "history", "--org", "acme", "--show", str(result["new_version"]), "--json"
    )
    assert json.loads(shown.output)["snapshot"]["routing"]["chains"] == {"chat": ["openai/gpt-4o"]}


async def test_rollback_of_an_unknown_version_or_org_exits_1(db: Database, db_url: str) -> None:
    assert (await run_cli(db_url, "org", "create", "acme")).exit_code == 0
    missing = await run_cli(db_url, "config", "rollback", "--org", "acme", "--to", "99", "--json")
    assert missing.exit_code == 1
    assert json.loads(missing.output)["error"]["type"] == "not_found"
    no_org = await run_cli(db_url, "config", "history", "--org", "ghost", "--json")
    assert no_org.exit_code == 1


async def test_flag_versions_are_listed_and_rolled_back_with_platform(db: Database, db_url: str) -> None:
    assert (await run_cli(db_url, "org", "create", "acme")).exit_code == 0
    assert (await run_cli(db_url, "flags", "set", "voice", "--percent", "0")).exit_code == 0
    assert (await run_cli(db_url, "flags", "kill", "voice")).exit_code == 0

    listed = await run_cli(db_url, "config", "history", "--platform", "--json")
    assert listed.exit_code == 0, listed.output
    payload = json.loads(listed.output)
    assert payload["scope"] == "platform" and payload["org_id"] is None
    kinds = [(v["scope"], v["kind"]) for v in payload["versions"]]
    assert kinds == [("platform", "flags"), ("platform", "flags"), ("platform", "initial")]
    org_view = json.loads((await run_cli(db_url, "config", "history", "--org", "acme", "--json")).output)
    assert [v["changes"] for v in org_view["versions"] if v["scope"] == "platform"] == [
        ["flag voice: off for this org (rollout at 0%)"]
    ]  # the kill changed nothing more for acme: voice was already off for it

    first = payload["versions"][-1]["version"]
    back = await run_cli(db_url, "config", "rollback", "--platform", "--to", str(first), "--json")
    assert back.exit_code == 0, back.output
    flags = json.loads((await run_cli(db_url, "flags", "list", "--json")).output)
    voice = next(f for f in flags["flags"] if f["name"] == "voice")
    assert (voice["killed"], voice["percent"]) == (False, None)


async def test_config_commands_need_exactly_one_of_org_and_platform(db: Database, db_url: str) -> None:
    neither = await run_cli(db_url, "config", "history", "--json")
    assert neither.exit_code == 2 and json.loads(neither.output)["error"]["type"] == "usage"
    both = await run_cli(db_url, "config", "rollback", "--org", "acme", "--platform", "--to", "1")
    assert both.exit_code == 2 and "exactly one of --org ORG and --platform" in both.output


def _below_head() -> str:
    below = (
        ScriptDirectory.from_config(alembic_config("sqlite://")).get_revision(head_revision()).down_revision
    )
    assert isinstance(below, str)
    return below


async def test_db_downgrade_asks_for_yes_then_undoes_and_upgrade_redoes(db_url: str) -> None:
    below = _below_head()
    assert (await run_cli(db_url, "db", "upgrade")).exit_code == 0
    refused = await run_cli(db_url, "db", "downgrade", below, "--json")
    assert refused.exit_code == 1
    assert json.loads(refused.output)["error"]["type"] == "confirmation_required"
    assert json.loads((await run_cli(db_url, "db", "current", "--json")).output)["current"] == head_revision()

    done = await run_cli(db_url, "db", "downgrade", below, "--yes", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.output) == {
        "from": head_revision(),
        "to": below,
        "undone": [head_revision()],
        "changed": True,
    }
    again = await run_cli(db_url, "db", "downgrade", below, "--json")
    assert json.loads(again.output)["changed"] is False

    unknown = await run_cli(db_url, "db", "downgrade", "nope", "--yes", "--json")
    assert unknown.exit_code == 1
    assert (await run_cli(db_url, "db", "upgrade")).exit_code == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_config_and_downgrade_help(db_url: str) -> None:
    for args in (("config", "history"), ("config", "rollback"), ("db", "downgrade")):
        shown = await run_cli(db_url, *args, "--help")
        assert shown.exit_code == 0 and "--json" in shown.output
    usage = await run_cli(db_url, "config", "rollback", "--org", "acme")
    assert usage.exit_code == 2
