"""`connections/{ref}/test` and `patchbay connection test` against an emulated endpoint."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from server.services import Overrides
from server.settings import Settings
from tests.emulators.harness import ServedApp
from tests.emulators.openai import OpenAIEmulator
from tests.server.conftest import ADMIN_TOKEN
from tests.server.test_cli import run_cli

KEY = "sk-test-CANARY-" + secrets.token_hex(8)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path, database_url=db_url, admin_token=ADMIN_TOKEN, allow_private_base_urls=True
    )


@pytest.fixture
def lab() -> Iterator[tuple[OpenAIEmulator, str]]:
    emu = OpenAIEmulator("compat", api_key=KEY, models=("llama-3-70b",))
    with ServedApp(emu) as served:
        yield emu, served.url + "/v1"


async def test_admin_test_records_health_and_never_shows_the_key(
    client: httpx.AsyncClient, admin_headers: dict[str, str], lab: tuple[OpenAIEmulator, str]
) -> None:
    emu, url = lab
    org = (await client.post("/admin/v1/orgs", json={"name": "acme"}, headers=admin_headers)).json()["id"]
    base = f"/admin/v1/orgs/{org}/connections"
    created = await client.post(
        base,
        json={
            "provider": "openai_compatible",
            "name": "mylab",
            "base_url": url,
            "key": KEY,
            "models": ["llama-3-70b"],
        },
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text

    result = await client.post(f"{base}/openai_compatible:mylab/test", headers=admin_headers)
    assert result.status_code == 200, result.text
    body = result.json()
    assert body["ok"] is True
    assert [p["name"] for p in body["probes"]] == ["test_auth", "list_models", "test_text"]
    assert body["connection"]["health"]["status"] == "ok"
    assert body["connection"]["health"]["models_found"] == ["llama-3-70b"]
    assert KEY not in result.text
    assert emu.chat_requests[-1].headers["authorization"] == f"Bearer {KEY}"

    await client.put(
        f"{base}/openai_compatible:mylab/key", json={"key": "sk-test-CANARY-wrong"}, headers=admin_headers
    )
    failed = (await client.post(f"{base}/openai_compatible:mylab/test", headers=admin_headers)).json()
    assert failed["ok"] is False
    assert failed["connection"]["health"] | {"checked_at": None, "latency_ms": None} == {
        "status": "failed",
        "error_class": "auth",
        "checked_at": None,
        "latency_ms": None,
        "models_found": ["llama-3-70b"],
    }


async def test_cli_test_exit_codes(
    db_url: str, settings: Settings, lab: tuple[OpenAIEmulator, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = lab
    monkeypatch.setenv("PATCHBAY_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PATCHBAY_ALLOW_PRIVATE_BASE_URLS", "true")
    assert (await run_cli(db_url, "db", "upgrade")).exit_code == 0
    assert (await run_cli(db_url, "org", "create", "acme")).exit_code == 0
    added = await run_cli(
        db_url,
        "connection",
        "add",
        "--org",
        "acme",
        "--provider",
        "openai_compatible",
        "--name",
        "mylab",
        "--base-url",
        url,
        "--model",
        "llama-3-70b",
        "--key-stdin",
        input=KEY,
    )
    assert added.exit_code == 0, added.output
    ok = await run_cli(db_url, "connection", "test", "--org", "acme", "openai_compatible:mylab", "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["connection"]["health"]["status"] == "ok"
    assert KEY not in ok.output

    await run_cli(
        db_url,
        "connection",
        "set-key",
        "--org",
        "acme",
        "openai_compatible:mylab",
        "--key-stdin",
        input="sk-bad",
    )
    bad = await run_cli(db_url, "connection", "test", "--org", "acme", "openai_compatible:mylab")
    assert bad.exit_code == 1
    assert "test_auth: FAILED" in bad.output and "auth" in bad.output


async def test_speech_connection_runs_the_voice_probe(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    from tests.emulators.elevenlabs import ElevenLabsEmulator, quota_exceeded
    from tests.emulators.scripted import Scenario

    key = "sk_test_CANARY_" + secrets.token_hex(8)
    emu = ElevenLabsEmulator(valid_keys={key})
    with ServedApp(emu.app) as served:
        org = (await client.post("/admin/v1/orgs", json={"name": "voiceco"}, headers=admin_headers)).json()[
            "id"
        ]
        base = f"/admin/v1/orgs/{org}/connections"
        created = await client.post(
            base, json={"provider": "elevenlabs", "base_url": served.url, "key": key}, headers=admin_headers
        )
        assert created.status_code == 201, created.text
        ok = (await client.post(f"{base}/elevenlabs:default/test", headers=admin_headers)).json()
        assert [(p["name"], p["ok"]) for p in ok["probes"]] == [
            ("test_auth", True),
            ("list_models", True),
            ("test_voice", True),
        ]

        # /v1/user passes; the synthesis is refused for quota (ElevenLabs says so with a 401).
        emu.recorder.script(Scenario(), quota_exceeded())
        failed = await client.post(f"{base}/elevenlabs:default/test", headers=admin_headers)
    body = failed.json()
    assert body["ok"] is False
    assert (
        body["probes"][-1]["name"] == "test_voice" and body["probes"][-1]["error_class"] == "quota_exhausted"
    )
    assert body["connection"]["health"]["error_class"] == "quota_exhausted"
    assert key not in failed.text


class RebindingDNS:
    """An attacker's DNS: `rebind.test` is public for the first lookup and loopback after it."""

    def __init__(self) -> None:
        self.answers: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        if host != "rebind.test":
            raise OSError("no such host")
        answer = "93.184.216.34" if not self.answers else "127.0.0.1"
        self.answers.append(answer)
        return [answer]


@pytest.fixture
async def listener() -> AsyncIterator[tuple[int, list[str]]]:
    """A loopback TCP port that records every connection it accepts (and hangs up)."""
    accepted: list[str] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(str(writer.get_extra_info("peername")))
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1], accepted


async def test_cli_test_refuses_a_name_rebound_to_loopback_between_check_and_connect(
    db_url: str, tmp_path: Path, listener: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, accepted = listener
    monkeypatch.setenv("PATCHBAY_DATA_DIR", str(tmp_path))
    assert (await run_cli(db_url, "db", "upgrade")).exit_code == 0
    assert (await run_cli(db_url, "org", "create", "acme")).exit_code == 0
    added = await run_cli(
        db_url,
        "connection",
        "add",
        "--org",
        "acme",
        "--provider",
        "openai_compatible",
        "--name",
        "evil",
        "--base-url",
        f"https://rebind.test:{port}/v1",
        "--model",
        "llama-3-70b",
        "--key-stdin",
        input=KEY,
    )
    assert added.exit_code == 0, added.output

    dns = RebindingDNS()
    tested = await run_cli(
        db_url,
        "connection",
        "test",
        "--org",
        "acme",
        "openai_compatible:evil",
        "--json",
        overrides=Overrides(resolve=dns),
    )

    # The base-URL check saw the public answer; the connect asked again and got loopback.
    assert dns.answers[:2] == ["93.184.216.34", "127.0.0.1"]
    assert accepted == []
    assert tested.exit_code == 1, tested.output
    body = json.loads(tested.output)
    assert [(p["name"], p["ok"], p["error_class"]) for p in body["probes"]] == [
        ("guard", False, "permission")
    ]
    assert "rebind.test resolves to loopback address 127.0.0.1" in body["probes"][0]["message"]
    assert body["connection"]["health"]["status"] == "failed"


@pytest.fixture
def menu() -> Iterator[tuple[OpenAIEmulator, str]]:
    emu = OpenAIEmulator("compat", api_key=KEY, models=("gpt-4o-mini", "mystery-1"))
    with ServedApp(emu) as served:
        yield emu, served.url + "/v1"


async def test_test_lists_served_models_and_proposes_capabilities(
    db_url: str, settings: Settings, menu: tuple[OpenAIEmulator, str], monkeypatch: pytest.MonkeyPatch,
    client: httpx.AsyncClient, admin_headers: dict[str, str],
) -> None:  # fmt: skip
    _, url = menu
    monkeypatch.setenv("PATCHBAY_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PATCHBAY_ALLOW_PRIVATE_BASE_URLS", "true")
    assert (await run_cli(db_url, "db", "upgrade")).exit_code == 0
    assert (await run_cli(db_url, "org", "create", "acme")).exit_code == 0
    added = await run_cli(
        db_url, "connection", "add", "--org", "acme", "--provider", "openai_compatible", "--name", "mylab",
        "--base-url", url, "--model", "gpt-4o-mini:text", "--key-stdin", input=KEY,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    text = await run_cli(db_url, "connection", "test", "--org", "acme", "openai_compatible:mylab")
    assert "gpt-4o-mini:json,text,tools,vision\t(catalog:openai; declared now: text)" in text.output
    assert "mystery-1:text\t(unknown)" in text.output
    tested = await run_cli(db_url, "connection", "test", "--org", "acme", "openai_compatible:mylab", "--json")
    proposals = json.loads(tested.output)["proposals"]
    assert [(p["model"], p["spec"], p["source"], p["declared"]) for p in proposals] == [
        ("gpt-4o-mini", "gpt-4o-mini:json,text,tools,vision", "catalog:openai", ["text"]),
        ("mystery-1", "mystery-1:text", "unknown", None),
    ]
    org = (await client.get("/admin/v1/orgs", headers=admin_headers)).json()[0]["id"]
    api = await client.post(
        f"/admin/v1/orgs/{org}/connections/openai_compatible:mylab/test", headers=admin_headers
    )
    assert [p["spec"] for p in api.json()["proposals"]] == [
        "gpt-4o-mini:json,text,tools,vision",
        "mystery-1:text",
    ]
