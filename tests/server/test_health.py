from __future__ import annotations

import logging

import httpx
import pytest

from server.db import Database


async def test_healthz_is_alive(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert r.headers["x-request-id"].startswith("req_")


async def test_readyz_reports_ready_at_head(client: httpx.AsyncClient) -> None:
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready"


async def test_readyz_is_unavailable_when_migrations_are_behind(
    client: httpx.AsyncClient, db: Database
) -> None:
    await db.downgrade("base")
    r = await client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["migrations"]["current"] is None
    await db.upgrade()
    assert (await client.get("/readyz")).status_code == 200


async def test_incoming_request_id_is_echoed_when_sane(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz", headers={"x-request-id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/healthz", headers={"x-request-id": "bad id with spaces"})
    assert r.headers["x-request-id"].startswith("req_")


async def test_access_log_line_names_the_request_and_the_caller(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="patchbay.access"):
        r = await client.get("/healthz?probe=1")
    line = next(rec for rec in caplog.records if rec.name == "patchbay.access")
    fields = line.fields  # type: ignore[attr-defined]
    assert fields["method"] == "GET" and fields["path"] == "/healthz" and fields["status"] == 200
    assert fields["client"] == "127.0.0.1" and fields["duration_ms"] >= 0
    assert r.headers["x-request-id"]


async def test_readyz_names_the_builtin_voice_engines(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    # No Whisper model in this data directory: pocketsphinx serves, and both /readyz and the
    # catalog the UI reads say so.
    r = await client.get("/readyz")
    assert r.json()["voice"] == {
        "stt": "internal:pocketsphinx",
        "tts": "internal:espeak",
        "whisper_model": "missing",
    }
    intents = {
        i["id"]: i for i in (await client.get("/admin/v1/catalog", headers=admin_headers)).json()["intents"]
    }
    assert intents["stt"]["builtin"] == "internal:pocketsphinx"
    assert "Whisper model is missing" in intents["stt"]["builtin_note"]
    assert intents["tts"]["builtin"] == "internal:espeak" and intents["tts"]["builtin_note"] is None
    assert intents["chat"]["builtin"] is None
