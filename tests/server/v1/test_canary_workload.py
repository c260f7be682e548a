"""Issue 3's canary scan, end to end on a running server.

A workload creates connections with canary keys, uses them through /v1 (success, fallback
after an upstream auth failure that echoes the key back, a strict pinned failure, a stream),
tests them, replaces a key, rotates the vault's master key with the CLI while the server
runs, then revokes and deletes. Afterwards no canary may appear in any HTTP body or header,
any log line (SQL parameters included), any exception text, any table row, or the SQLite
files' bytes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from server.cli import cli
from server.settings import Settings
from tests.emulators.openai_errors import auth_error
from tests.providers.vault.canary import LeakReport, captured_logs, exception_text, scan_database
from tests.server.v1.conftest import CANARIES, Patchbay, Upstreams

REPLACEMENT = "sk-proj-CANARY-replacement-fedcba9876543210"
ALL = (*CANARIES, REPLACEMENT)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    # A key file (not PATCHBAY_MASTER_KEY), so `patchbay vault rotate` can add a version live.
    return Settings(
        data_dir=tmp_path,
        database_url=db_url,
        admin_token="admin-test-token-0123456789abcdefghij",
        allow_private_base_urls=True,
        allow_plain_http_base_urls=True,
    )


def _record(seen: list[str], response: object) -> None:
    import httpx

    assert isinstance(response, httpx.Response)
    seen.append(f"{response.status_code} {dict(response.headers)!r} {response.text}")


async def _rotate(settings: Settings) -> dict[str, object]:
    env = {
        "PATCHBAY_DATABASE_URL": settings.resolved_database_url,
        "PATCHBAY_DATA_DIR": str(settings.data_dir),
    }
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["vault", "rotate", "--json"], env=env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    out: dict[str, object] = json.loads(result.output)
    return out


async def test_no_canary_leaks_anywhere(patchbay: Patchbay, upstreams: Upstreams, settings: Settings) -> None:
    seen: list[str] = []
    errors: list[str] = []
    admin = {"authorization": "Bearer admin-test-token-0123456789abcdefghij"}
    chat = {"model": "default", "messages": [{"role": "user", "content": "hello"}]}
    with captured_logs() as logs:
        async with patchbay.client() as client:
            _record(seen, r := await client.post("/v1/chat/completions", json=chat))
            assert r.status_code == 200, r.text
            assert r.headers["x-patchbay-provider"].startswith("openai")

            # The primary answers 401 and quotes our key back; the fallback serves.
            upstreams.openai.enqueue(auth_error("openai"))
            _record(seen, r := await client.post("/v1/chat/completions", json=chat))
            assert r.status_code == 200 and r.headers["x-patchbay-provider"].startswith("mistral")

            # A pinned model fails strictly: the caller sees an error, never the upstream body.
            upstreams.openai.always(auth_error("openai"))
            _record(
                seen,
                r := await client.post("/v1/chat/completions", json=chat | {"model": "openai/gpt-4o-mini"}),
            )
            assert r.status_code >= 400
            upstreams.openai.reset()

            async with client.stream("POST", "/v1/chat/completions", json=chat | {"stream": True}) as stream:
                body = b"".join([chunk async for chunk in stream.aiter_bytes()])
                seen.append(f"{stream.status_code} {dict(stream.headers)!r} {body.decode()}")

            org = f"/admin/v1/orgs/{patchbay.org_id}/connections"
            upstreams.openai.always(auth_error("openai"))
            _record(seen, r := await client.post(f"{org}/openai:main/test", headers=admin))
            assert r.json()["ok"] is False
            upstreams.openai.reset()
            _record(
                seen, await client.put(f"{org}/openai:main/key", json={"key": REPLACEMENT}, headers=admin)
            )
            _record(seen, await client.get(org, headers=admin))

            rotation = await _rotate(settings)
            seen.append(json.dumps(rotation))
            _record(seen, r := await client.post("/v1/chat/completions", json=chat))
            assert r.status_code == 200, r.text
            # The replaced key, re-wrapped under the new master key version, still serves.
            assert upstreams.openai.chat_requests[-1].headers["authorization"] == f"Bearer {REPLACEMENT}"

            _record(seen, await client.post(f"{org}/openai:main/revoke", headers=admin))
            _record(seen, await client.delete(f"{org}/mistral:default", headers=admin))
            _record(seen, r := await client.post("/v1/chat/completions", json=chat))
            errors.append(r.text)
        await patchbay.services.audit.flush()
        await patchbay.services.usage.flush()
        for record in logging.getLogger().handlers:
            record.flush()

    report = LeakReport()
    for i, text in enumerate(seen):
        report.check_text(f"http exchange {i}", text, ALL)
    report.check_text("logs", logs.getvalue(), ALL)
    for i, text in enumerate(errors):
        report.check_text(f"error {i}", text, ALL)
    rows = await scan_database(patchbay.services.db, report, ALL)
    assert rows > 0
    assert report.hits == []


def test_the_scanner_would_see_a_leak() -> None:
    report = LeakReport()
    report.check_text("probe", f"oops {REPLACEMENT}", ALL)
    try:
        raise ValueError(f"bad key {CANARIES[0]}")
    except ValueError as exc:
        report.check_text("exception", exception_text(exc), ALL)
    assert len(report.hits) == 2
