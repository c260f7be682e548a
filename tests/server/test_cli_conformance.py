"""`patchbay conformance run|show|override` and `org update --conformance-gates`: JSON entries,
progress on stderr, exit codes, the audit event of an override."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from server.cli import cli
from server.settings import Settings
from tests.emulators.conformance_models import Sloppy, good
from tests.emulators.harness import ServedApp
from tests.emulators.openai import OpenAIEmulator
from tests.server.conftest import ADMIN_TOKEN
from tests.server.test_cli import run_cli
from tests.server.test_connection_test import KEY


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path, database_url=db_url, admin_token=ADMIN_TOKEN, allow_private_base_urls=True
    )


@pytest.fixture
def labs() -> Iterator[tuple[str, str]]:
    good_emu = OpenAIEmulator("compat", api_key=KEY, models=("llama",), responder=good)
    sloppy_emu = OpenAIEmulator("compat", api_key=KEY, models=("llama",), responder=Sloppy())
    with ServedApp(good_emu) as g, ServedApp(sloppy_emu) as s:
        yield g.url + "/v1", s.url + "/v1"


async def test_run_prints_entries_and_exit_codes_say_whether_gates_passed(
    db_url: str,
    settings: Settings,
    labs: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATCHBAY_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PATCHBAY_ALLOW_PRIVATE_BASE_URLS", "true")
    assert (await run_cli(db_url, "db", "upgrade")).exit_code == 0
    assert (await run_cli(db_url, "org", "create", "acme")).exit_code == 0
    for name, url in zip(("good", "sloppy"), labs, strict=True):
        added = await run_cli(
            db_url,
            "connection",
            "add",
            "--org",
            "acme",
            "--provider",
            "openai_compatible",
            "--name",
            name,
            "--base-url",
            url,
            "--model",
            "llama",
            "--key-stdin",
            input=KEY,
        )
        assert added.exit_code == 0, added.output

    passed = await run_cli(
        db_url, "conformance", "run", "--org", "acme", "--connection", "openai_compatible:good", "--json"
    )
    assert passed.exit_code == 0, passed.output
    entries = json.loads(passed.stdout)
    assert {e["capability"] for e in entries} == {"tools", "json", "refusal"}
    for entry in entries:
        assert {"model", "capability", "cases", "passed", "rate", "threshold", "gate"} <= entry.keys()
        assert entry["model"] == "llama" and entry["gate"] == "pass" and entry["rate"] == 1.0
    assert "tools.streamed: ok" in passed.stderr  # progress, kept off stdout

    failed = await run_cli(
        db_url,
        "conformance",
        "run",
        "--org",
        "acme",
        "--connection",
        "openai_compatible:sloppy",
        "--runs",
        "2",
    )
    assert failed.exit_code == 4, failed.output
    assert "fail" in failed.stdout and "tools" in failed.stdout

    unknown = await run_cli(db_url, "conformance", "run", "--org", "acme", "--suite", "nope", "--json")
    assert unknown.exit_code == 1 and "the suites are core" in unknown.output
    missing = await run_cli(db_url, "conformance", "run", "--org", "acme", "--connection", "openai:gone")
    assert missing.exit_code == 1 and "connection list" in missing.output

    on = await run_cli(db_url, "org", "update", "acme", "--conformance-gates", "on", "--json")
    assert on.exit_code == 0, on.output
    assert json.loads(on.output)["conformance_gates"] is True
    shown = await run_cli(db_url, "conformance", "show", "--org", "acme", "--json")
    report = json.loads(shown.output)
    assert report["conformance_gates"] is True
    gates = {(r["connection"], r["capability"]): r["gate"] for r in report["results"]}
    assert (
        gates[("openai_compatible:good", "tools")] == "pass"
        and gates[("openai_compatible:sloppy", "tools")] == "fail"
    )

    overridden = await run_cli(
        db_url,
        "conformance",
        "override",
        "--org",
        "acme",
        "--connection",
        "openai_compatible:sloppy",
        "--model",
        "llama",
        "--capability",
        "tools",
        "--reason",
        "vendor fix pending",
        "--json",
    )
    assert overridden.exit_code == 0, overridden.output
    assert json.loads(overridden.output)["conformance_overrides"] == [
        {"connection": "openai_compatible:sloppy", "model": "llama", "capability": "tools"}
    ]
    audit = await run_cli(db_url, "audit", "--org", "acme", "--json")
    assert "conformance.override" in audit.output and "vendor fix pending" in audit.output


def test_help_names_the_options() -> None:
    result = CliRunner().invoke(cli, ["conformance", "run", "--help"])
    assert result.exit_code == 0
    for option in ("--org", "--connection", "--model", "--suite", "--runs", "--json"):
        assert option in result.output
