"""`patchbay vault status|rotate` end to end: real database, real key file, real exit codes.

(Tests server/cli_vault.py; it lives here with the other vault tests rather than in tests/server.)
"""

from __future__ import annotations

import asyncio
import base64
import json
import stat
from pathlib import Path

import click
from click.testing import CliRunner, Result

from foundation.audit import MemoryAudit
from providers.vault.crypto import MasterKey
from providers.vault.keyring import FileKeys, Keyring, KeySource, StaticKeys, load_key_source, new_master_key
from providers.vault.secret import Secret
from providers.vault.store import Vault
from server.cli_vault import vault_group
from server.db import Database
from tests.providers.vault.conftest import canary_key

cli = click.Group(commands={"vault": vault_group})


async def run_cli(db_url: str, data_dir: Path, *args: str, master_key: str | None = None) -> Result:
    env = {
        "PATCHBAY_DATABASE_URL": db_url,
        "PATCHBAY_DATA_DIR": str(data_dir),
        "PATCHBAY_MASTER_KEY": master_key,
        "PATCHBAY_MASTER_KEY_FILE": None,
    }
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env, catch_exceptions=False)


def env_value(*keys: MasterKey) -> str:
    return ",".join(f"{k.version}:{base64.b64encode(k.key).decode()}" for k in keys)


async def _fill(db: Database, keys: KeySource, n: int, prefix: str = "conn") -> list[str]:
    vault = Vault(keys, db.sessions, MemoryAudit())
    async with db.session() as s:
        return [
            (
                await vault.put(
                    s,
                    org_id="org_a",
                    owner_id=f"{prefix}_{i}",
                    field="api_key",
                    plaintext=Secret(canary_key()),
                )
            ).id
            for i in range(n)
        ]


async def test_help_texts(db_url: str, tmp_path: Path) -> None:
    for command in ("status", "rotate"):
        result = await run_cli(db_url, tmp_path, "vault", command, "--help")
        assert result.exit_code == 0 and "--json" in result.output


async def test_status_of_an_empty_vault_generates_no_key(db: Database, db_url: str, tmp_path: Path) -> None:
    result = await run_cli(db_url, tmp_path, "vault", "status", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["current_version"] is None and payload["records_by_version"] == {}
    rotate = await run_cli(db_url, tmp_path, "vault", "rotate", "--json")
    assert rotate.exit_code == 3
    assert "no vault master key is configured" in json.loads(rotate.stdout)["error"]["message"]
    assert not (tmp_path / "master.key").exists()


async def test_key_file_rotation_adds_a_version_and_rewraps_everything(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    keys = load_key_source(master_key=None, master_key_file=None, data_dir=tmp_path)
    ids = await _fill(db, keys, 7)

    status = await run_cli(db_url, tmp_path, "vault", "status", "--json")
    assert json.loads(status.stdout)["records_by_version"] == {"v1": 7}

    rotated = await run_cli(db_url, tmp_path, "vault", "rotate", "--batch-size", "3", "--json")
    assert rotated.exit_code == 0, rotated.output
    payload = json.loads(rotated.stdout)
    assert (payload["added_version"], payload["target_version"], payload["rewrapped"]) == ("v2", "v2", 7)
    assert payload["status"]["records_by_version"] == {"v2": 7}
    assert payload["status"]["removable_versions"] == ["v1"]
    path = tmp_path / "master.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert FileKeys(path).versions() == ("v2", "v1")

    text = await run_cli(db_url, tmp_path, "vault", "rotate", "--batch-size", "3")
    assert text.exit_code == 0, text.output
    assert "added master key v3" in text.stderr and "back this file up" in text.stderr
    assert "[3/7] re-wrapped under v3" in text.stderr and "[7/7] re-wrapped under v3" in text.stderr
    assert "re-wrapped 7 record(s) under v3" in text.stdout
    # The server's own key source reads every record after the file changed under it.
    vault = Vault(keys, db.sessions, MemoryAudit())
    for i, secret_id in enumerate(ids):
        cred = await vault.credential(secret_id, org_id="org_a", owner_id=f"conn_{i}", field="api_key")
        assert cred.key_version == "v3" and cred.reveal("t").startswith("sk-test-CANARY-")


async def test_env_keys_rotate_after_the_operator_adds_a_key(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    v1, v2 = new_master_key("v1"), new_master_key("v2")
    await _fill(db, StaticKeys(Keyring((v1,))), 4)

    nothing = await run_cli(db_url, tmp_path, "vault", "rotate", "--json", master_key=env_value(v1))
    assert nothing.exit_code == 1
    error = json.loads(nothing.stdout)["error"]
    assert error["type"] == "nothing_to_rotate" and "PATCHBAY_MASTER_KEY" in error["message"]

    done = await run_cli(db_url, tmp_path, "vault", "rotate", "--json", master_key=env_value(v2, v1))
    assert done.exit_code == 0, done.output
    payload = json.loads(done.stdout)
    assert payload["added_version"] is None and payload["rewrapped"] == 4
    assert payload["status"]["records_by_version"] == {"v2": 4}

    status = await run_cli(db_url, tmp_path, "vault", "status", master_key=env_value(v2, v1))
    assert status.exit_code == 0
    assert "v2: 4 record(s)" in status.stdout and "no records use v1: safe to remove" in status.stdout
    assert base64.b64encode(v1.key).decode() not in status.output + done.output


async def test_missing_or_wrong_keys_are_not_ready(db: Database, db_url: str, tmp_path: Path) -> None:
    v1 = new_master_key("v1")
    await _fill(db, StaticKeys(Keyring((v1,))), 2)

    missing = await run_cli(
        db_url, tmp_path, "vault", "status", "--json", master_key=env_value(new_master_key("v2"))
    )
    assert missing.exit_code == 3
    assert json.loads(missing.stdout)["missing_versions"] == ["v1"]

    rotate_missing = await run_cli(
        db_url, tmp_path, "vault", "rotate", master_key=env_value(new_master_key("v2"))
    )
    assert rotate_missing.exit_code == 3
    assert "master key version(s) v1" in rotate_missing.stderr

    wrong = await run_cli(
        db_url, tmp_path, "vault", "rotate", "--json", master_key=env_value(new_master_key("v1"))
    )
    assert wrong.exit_code == 3
    assert "master key v1 does not open" in json.loads(wrong.stdout)["error"]["message"]

    bad = await run_cli(db_url, tmp_path, "vault", "status", master_key="v1:not-base64!")
    assert bad.exit_code == 3 and "not valid base64" in bad.stderr
