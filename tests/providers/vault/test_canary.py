"""Canary scan: a full vault workload leaves the canary nowhere but the provider's wire.

Creates, uses, replaces, rotates and deletes secrets, triggers failed decrypts of every kind
and an auth failure from a loopback provider, then scans the database (rows, SQLite file and
WAL), every log line (at DEBUG, SQL parameters included), every exception and every HTTP
body and header the client received.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from providers.vault.audit import DecryptAuditWriter
from providers.vault.credential import VaultCredential
from providers.vault.errors import VaultError
from providers.vault.keyring import FileKeys, Keyring, StaticKeys, load_key_source, new_master_key
from providers.vault.secret import Secret
from providers.vault.store import Vault
from providers.vault.tables import VaultSecret
from server.db import Database
from tests.emulators.harness import ServedApp
from tests.providers.vault.canary import (
    LeakReport,
    captured_logs,
    exception_text,
    scan_database,
    sqlite_files,
)
from tests.providers.vault.conftest import canary_key


async def _chat(request: Request) -> JSONResponse:
    """A provider that rejects every key, masking it the way OpenAI's 401 does."""
    auth = request.headers.get("authorization", "")
    key = auth.removeprefix("Bearer ")
    masked = key[:3] + "*" * 8 + key[-4:]
    return JSONResponse(
        {
            "error": {
                "message": f"Incorrect API key provided: {masked}",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
        },
        status_code=401,
    )


PROVIDER = Starlette(routes=[Route("/v1/chat/completions", _chat, methods=["POST"])])


def _auth_header(credential: VaultCredential) -> dict[str, str]:
    """What an adapter does: reveal inside the function that builds the auth header."""
    return {"Authorization": f"Bearer {credential.reveal('chat.completions')}"}


async def test_canary_appears_nowhere(db: Database, db_url: str, tmp_path: Path) -> None:
    first, second, third, fourth = canary_key(), canary_key(), canary_key(), canary_key()
    canaries = [first, second, third, fourth]
    report = LeakReport()
    errors: list[BaseException] = []
    http_texts: list[str] = []

    with captured_logs() as logs, ServedApp(PROVIDER) as provider:
        keys = load_key_source(master_key=None, master_key_file=None, data_dir=tmp_path / "data")
        assert isinstance(keys, FileKeys)
        audit = DecryptAuditWriter(db.sessions, flush_interval=3600)
        audit.start()
        vault = Vault(keys, db.sessions, audit)
        try:
            async with db.session() as s:
                one = await vault.put(
                    s, org_id="org_a", owner_id="conn_1", field="api_key", plaintext=Secret(first)
                )
                two = await vault.put(
                    s, org_id="org_a", owner_id="conn_2", field="api_key", plaintext=Secret(third)
                )
                three = await vault.put(
                    s, org_id="org_a", owner_id="conn_3", field="api_key", plaintext=Secret(fourth)
                )
            cred = await vault.credential(one.id, org_id="org_a", owner_id="conn_1", field="api_key")

            # A provider call that fails with an auth error.
            async with httpx.AsyncClient(base_url=provider.url) as client:
                response = await client.post(
                    "/v1/chat/completions", headers=_auth_header(cred), json={"model": "m"}
                )
            assert response.status_code == 401
            http_texts += [response.text, repr(dict(response.headers))]

            async with db.session() as s:
                await vault.replace(
                    s,
                    secret_id=one.id,
                    org_id="org_a",
                    owner_id="conn_1",
                    field="api_key",
                    plaintext=Secret(second),
                )
            keys.add_version()
            await vault.rotate(batch_size=1)
            cred = await vault.credential(one.id, org_id="org_a", owner_id="conn_1", field="api_key")
            assert cred.reveal("check") == second and cred.key_version == "v2"

            # Failed decrypts of every kind: tampered, moved, wrong key, missing key.
            async with db.session() as s:
                row = await s.get(VaultSecret, three.id)
                assert row is not None
                row.ciphertext = bytes([row.ciphertext[0] ^ 0xFF]) + row.ciphertext[1:]
            tampered = await vault.credential(three.id, org_id="org_a", owner_id="conn_3", field="api_key")
            async with db.session() as s:
                await s.execute(update(VaultSecret).where(VaultSecret.id == two.id).values(owner_id="conn_9"))
            moved = await vault.credential(two.id, org_id="org_a", owner_id="conn_9", field="api_key")
            wrong = Vault(StaticKeys(Keyring((new_master_key("v2"),))), db.sessions, audit)
            missing = Vault(StaticKeys(Keyring((new_master_key("v7"),))), db.sessions, audit)
            attempts = [tampered, moved]
            attempts.append(
                await wrong.credential(one.id, org_id="org_a", owner_id="conn_1", field="api_key")
            )
            attempts.append(
                await missing.credential(one.id, org_id="org_a", owner_id="conn_1", field="api_key")
            )
            for attempt in attempts:
                with pytest.raises(VaultError) as err:
                    attempt.reveal("chat.completions")
                errors.append(err.value)
            for checker in (wrong, missing):
                async with db.session() as s:
                    with pytest.raises(VaultError) as err:
                        await checker.check_keys(s)
                    errors.append(err.value)

            async with db.session() as s:
                assert await vault.delete(s, secret_id=two.id, org_id="org_a")
                await vault.delete(s, secret_id=one.id, org_id="org_a")
                await vault.delete(s, secret_id=three.id, org_id="org_a")
        finally:
            await audit.aclose()

    assert len(errors) == 6
    for exc in errors:
        report.check_text(f"exception {type(exc).__name__}", exception_text(exc), canaries)
    for i, text in enumerate(http_texts):
        report.check_text(f"http #{i}", text, canaries)
    log_text = logs.getvalue()
    assert "vault rotation finished" in log_text and "SELECT" in log_text  # the capture really worked
    report.check_text("logs", log_text, canaries)
    rows = await scan_database(db, report, canaries)
    assert rows > 5  # audit rows and the rotation run at least
    if db_url.startswith("sqlite"):
        assert any(p.name.endswith("-wal") for p in sqlite_files(db_url))
        await db.dispose()  # checkpoint the WAL into the main file, then scan the file again
        for path in sqlite_files(db_url):
            report.check_bytes(f"file {path.name} after close", path.read_bytes(), canaries)
    assert report.hits == []


async def test_the_scanner_finds_a_planted_canary(db: Database, db_url: str) -> None:
    """The scan above could pass by looking in the wrong places; plant a canary and see it found."""
    canary = canary_key()
    now = datetime.now(UTC)
    async with db.session() as s:
        s.add(
            VaultSecret(
                id="sec_planted",
                org_id="o",
                owner_id="c",
                field="f",
                ciphertext=canary.encode(),
                nonce=b"n",
                wrapped_key=b"k",
                wrap_nonce=b"w",
                key_version="v1",
                fingerprint="x",
                created_at=now,
                set_at=now,
            )
        )
    report = LeakReport()
    await scan_database(db, report, [canary])
    assert any("table vault_secrets" in h for h in report.hits)
    if db_url.startswith("sqlite"):
        assert any(h.startswith("file ") for h in report.hits)
    with captured_logs() as logs:
        logging.getLogger("tests.canary").info("leak %s", canary)
    report.check_text("logs", logs.getvalue(), [canary])
    assert any(h.startswith("logs") for h in report.hits)
