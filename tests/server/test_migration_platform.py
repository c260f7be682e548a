"""Migration 0011 (platform connections) both ways, on every backend, with a platform
connection and its key present."""

from __future__ import annotations

from sqlalchemy import text

from foundation.audit import MemoryAudit
from providers.vault.keyring import Keyring, StaticKeys, new_master_key
from providers.vault.secret import Secret
from providers.vault.store import Vault
from routing.connections import Connections
from routing.guard import GuardPolicy
from server.db import Database


async def test_down_to_0010_drops_platform_connections_and_their_keys(db_url: str) -> None:
    db = Database(db_url)
    try:
        await db.upgrade()
        vault = Vault(StaticKeys(Keyring((new_master_key("v1"),))), db.sessions, MemoryAudit())
        async with db.session() as s:
            await Connections(vault, GuardPolicy()).create(
                s, None, provider="openai", key=Secret("sk-platform-0123456789")
            )
        await db.downgrade("0010")
        async with db.engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM connections"))).scalar_one() == 0
            assert (await conn.execute(text("SELECT count(*) FROM vault_secrets"))).scalar_one() == 0
        await db.upgrade()
    finally:
        await db.dispose()
