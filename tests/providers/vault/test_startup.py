"""Start-up refusal through the real app lifespan: a missing or wrong master key stops the server.

(Exercises server/services.py's use of `Vault.check_keys`; it can move to tests/server.)
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from pydantic import SecretStr

from foundation.audit import MemoryAudit
from providers.vault.crypto import MasterKey
from providers.vault.keyring import Keyring, StaticKeys, new_master_key
from providers.vault.secret import Secret
from providers.vault.store import Vault
from server.app import create_app
from server.db import Database
from server.services import Services, StartupError
from server.settings import Settings


def _env(*keys: MasterKey) -> SecretStr:
    return SecretStr(",".join(f"{k.version}:{base64.b64encode(k.key).decode()}" for k in keys))


async def _start(settings: Settings, db: Database) -> None:
    app = create_app(settings, services=Services.build(settings, db))
    async with app.router.lifespan_context(app):
        pass


@pytest.mark.parametrize(
    ("configured", "message"),
    [
        ("missing", "master key version(s) v1, but no configured key provides them"),
        ("wrong", "master key v1 does not open the vault records wrapped under v1"),
        ("generated", "master key v1 does not open the vault records wrapped under v1"),
    ],
)
async def test_the_server_refuses_keys_that_cannot_open_the_vault(
    db: Database, db_url: str, tmp_path: Path, configured: str, message: str
) -> None:
    v1 = new_master_key("v1")
    async with db.session() as s:
        await Vault(StaticKeys(Keyring((v1,))), db.sessions, MemoryAudit()).put(
            s,
            org_id="org_a",
            owner_id="conn_1",
            field="api_key",
            plaintext=Secret("sk-test-CANARY-startup-000"),
        )
    master_key = {
        "missing": _env(new_master_key("v2")),
        "wrong": _env(new_master_key("v1")),
        "generated": None,
    }[configured]
    # "generated": no key configured, so a fresh key file is generated over a vault that needs the old one.
    settings = Settings(data_dir=tmp_path, database_url=db_url, master_key=master_key)
    with pytest.raises(StartupError) as err:
        await _start(settings, db)
    assert message in str(err.value)
    assert base64.b64encode(v1.key).decode() not in str(err.value)

    ok = Settings(data_dir=tmp_path, database_url=db_url, master_key=_env(v1))
    await _start(ok, db)
