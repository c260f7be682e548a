"""Migration 0002 on both backends: existing connections survive, the FK holds, downgrade works."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from server.db import Database


async def _exec(db: Database, sql: str, **params: object) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text(sql), params)


async def test_upgrade_keeps_connections_and_adds_the_secret_reference(db_url: str) -> None:
    db = Database(db_url)
    try:
        await db.upgrade("0001")
        now = datetime.now(UTC)
        await _exec(
            db,
            "INSERT INTO orgs (id, name, tier, created_at) VALUES ('org_1', 'acme', 'free', :now)",
            now=now,
        )
        await _exec(
            db,
            "INSERT INTO connections (id, org_id, provider, name, position, status, credential_kind, credential_source,"
            " models, created_at, updated_at) VALUES ('conn_1', 'org_1', 'openrouter', 'main', 3, 'active', 'api_key',"
            " 'org_key', '[]', :now, :now)",
            now=now,
        )
        await db.upgrade("0002")
        async with db.engine.connect() as conn:
            position = (
                await conn.execute(text("SELECT position FROM connections WHERE id = 'conn_1'"))
            ).scalar_one()
        assert position == 3
        with pytest.raises(IntegrityError):
            await _exec(db, "UPDATE connections SET secret_id = 'sec_missing' WHERE id = 'conn_1'")
        await _exec(
            db,
            "INSERT INTO vault_secrets (id, org_id, owner_id, field, ciphertext, nonce, wrapped_key, wrap_nonce,"
            " key_version, fingerprint, created_at, set_at) VALUES ('sec_1', 'org_1', 'conn_1', 'api_key', :b, :b, :b,"
            " :b, 'v1', 'fp', :now, :now)",
            b=b"\x00",
            now=now,
        )
        await _exec(db, "UPDATE connections SET secret_id = 'sec_1' WHERE id = 'conn_1'")
        await _exec(db, "DELETE FROM vault_secrets WHERE id = 'sec_1'")
        async with db.engine.connect() as conn:
            secret_id = (
                await conn.execute(text("SELECT secret_id FROM connections WHERE id = 'conn_1'"))
            ).scalar_one()
        assert secret_id is None

        await db.downgrade("0001")
        assert await db.current_revision() == "0001"
        async with db.engine.connect() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM connections"))).scalar_one()
        assert count == 1
        await db.upgrade("0002")
    finally:
        await db.dispose()
