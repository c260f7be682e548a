"""The vault service over SQLite and PostgreSQL: store, use, replace, delete, start-up checks."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select, update

from foundation.audit import AuditEvent, MemoryAudit
from foundation.orgs import Org
from providers.credentials import Credential
from providers.vault.errors import DecryptError, MissingKeyError, SecretExists, SecretNotFound, WrongKeyError
from providers.vault.keyring import Keyring, StaticKeys, new_master_key
from providers.vault.secret import Secret
from providers.vault.store import Vault
from providers.vault.tables import VaultSecret
from routing.tables import Connection
from server.db import Database


async def _put(db: Database, vault: Vault, key: str, *, org: str = "org_a", owner: str = "conn_1") -> str:
    async with db.session() as s:
        return (await vault.put(s, org_id=org, owner_id=owner, field="api_key", plaintext=Secret(key))).id


async def test_round_trip_with_decrypt_audit(
    db: Database, vault: Vault, audit: MemoryAudit, canary: str
) -> None:
    async with db.session() as s:
        info = await vault.put(
            s, org_id="org_a", owner_id="conn_1", field="api_key", plaintext=Secret(canary)
        )
    assert info.id.startswith("sec_") and info.key_version == "v1"
    assert info.fingerprint == Secret(canary).fingerprint and canary not in info.fingerprint
    assert isinstance(info.set_at, datetime) and info.set_at.tzinfo is not None

    cred = await vault.credential(info.id, org_id="org_a", owner_id="conn_1", field="api_key")
    assert isinstance(cred, Credential)
    assert cred.fingerprint == info.fingerprint
    assert canary not in repr(cred)
    assert audit.entries == []  # loading a credential decrypts nothing
    assert cred.reveal("chat.completions") == canary
    [event] = audit.entries
    assert (event.org_id, event.action, event.target_type, event.target_id) == (
        "org_a",
        "secret.decrypt",
        "connection",
        "conn_1",
    )
    assert event.details["purpose"] == "chat.completions" and event.details["secret_id"] == info.id
    assert canary not in repr(event)

    async with db.session() as s:
        actions = (await s.scalars(select(AuditEvent.action).where(AuditEvent.target_id == info.id))).all()
    assert actions == ["secret.create"]


async def test_replace_keeps_the_id_and_delete_removes(db: Database, vault: Vault, canary: str) -> None:
    secret_id = await _put(db, vault, "sk-test-first-key-0000000000")
    async with db.session() as s:
        before = await vault.info(s, secret_id=secret_id, org_id="org_a")
        info = await vault.replace(
            s,
            secret_id=secret_id,
            org_id="org_a",
            owner_id="conn_1",
            field="api_key",
            plaintext=Secret(canary),
        )
    assert info.id == secret_id
    assert info.fingerprint != before.fingerprint and info.set_at >= before.set_at
    cred = await vault.credential(secret_id, org_id="org_a", owner_id="conn_1", field="api_key")
    assert cred.reveal("test") == canary

    async with db.session() as s:
        with pytest.raises(SecretNotFound):
            await vault.replace(
                s,
                secret_id=secret_id,
                org_id="org_b",
                owner_id="conn_1",
                field="api_key",
                plaintext=Secret(canary),
            )
        assert await vault.delete(s, secret_id=secret_id, org_id="org_b") is False
        assert await vault.delete(s, secret_id=secret_id, org_id="org_a") is True
    with pytest.raises(SecretNotFound):
        await vault.credential(secret_id, org_id="org_a", owner_id="conn_1", field="api_key")
    async with db.session() as s:
        actions = (
            await s.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.target_id == secret_id)
                .order_by(AuditEvent.created_at)
            )
        ).all()
    assert actions == ["secret.create", "secret.replace", "secret.delete"]


async def test_a_second_put_for_the_same_field_is_refused(db: Database, vault: Vault, canary: str) -> None:
    secret_id = await _put(db, vault, canary)
    async with db.session() as s:
        with pytest.raises(SecretExists) as err:
            await vault.put(s, org_id="org_a", owner_id="conn_1", field="api_key", plaintext=Secret(canary))
    assert secret_id in str(err.value) and canary not in str(err.value)
    await _put(db, vault, canary, org="org_b")  # the same owner id in another org is another record


async def test_another_org_cannot_load_and_a_moved_row_cannot_decrypt(
    db: Database, vault: Vault, audit: MemoryAudit, canary: str
) -> None:
    secret_id = await _put(db, vault, canary)
    for org, owner, field in [
        ("org_b", "conn_1", "api_key"),
        ("org_a", "conn_2", "api_key"),
        ("org_a", "conn_1", "token"),
    ]:
        with pytest.raises(SecretNotFound):
            await vault.credential(secret_id, org_id=org, owner_id=owner, field=field)
    # Someone with database access rewrites the row to belong to another org.
    async with db.session() as s:
        await s.execute(update(VaultSecret).where(VaultSecret.id == secret_id).values(org_id="org_evil"))
    cred = await vault.credential(secret_id, org_id="org_evil", owner_id="conn_1", field="api_key")
    with pytest.raises(DecryptError) as err:
        cred.reveal("test")
    assert canary not in str(err.value) and secret_id in str(err.value)
    assert [e.action for e in audit.entries] == ["secret.decrypt_failed"]


async def test_tampered_ciphertext_is_a_typed_error(db: Database, vault: Vault, canary: str) -> None:
    secret_id = await _put(db, vault, canary)
    async with db.session() as s:
        row = await s.get(VaultSecret, secret_id)
        assert row is not None
        row.ciphertext = bytes([row.ciphertext[0] ^ 0x80]) + row.ciphertext[1:]
    cred = await vault.credential(secret_id, org_id="org_a", owner_id="conn_1", field="api_key")
    with pytest.raises(DecryptError):
        cred.reveal("test")


async def test_start_up_check_names_a_missing_version(db: Database, vault: Vault, canary: str) -> None:
    await _put(db, vault, canary)
    async with db.session() as s:
        await vault.check_keys(s)  # the right key passes
        other = Vault(StaticKeys(Keyring((new_master_key("v2"),))), db.sessions, MemoryAudit())
        with pytest.raises(MissingKeyError) as err:
            await other.check_keys(s)
    assert err.value.versions == ("v1",)
    assert "v1" in str(err.value) and "PATCHBAY_MASTER_KEY" in str(err.value)


async def test_start_up_check_detects_wrong_key_material(db: Database, vault: Vault, canary: str) -> None:
    await _put(db, vault, canary)
    wrong = Vault(StaticKeys(Keyring((new_master_key("v1"),))), db.sessions, MemoryAudit())
    async with db.session() as s:
        with pytest.raises(WrongKeyError, match="master key v1 does not open"):
            await wrong.check_keys(s)


async def test_empty_vault_passes_any_check(db: Database) -> None:
    vault = Vault(StaticKeys(Keyring(())), db.sessions, MemoryAudit())
    async with db.session() as s:
        await vault.check_keys(s)
        status = await vault.status(s)
    assert status.records_by_version == {} and status.current_version is None


async def test_status_counts_per_version(db: Database, canary: str) -> None:
    v1, v2 = new_master_key("v1"), new_master_key("v2")
    old = Vault(StaticKeys(Keyring((v1,))), db.sessions, MemoryAudit())
    await _put(db, old, canary, owner="conn_1")
    await _put(db, old, canary, owner="conn_2")
    new = Vault(StaticKeys(Keyring((v2, v1))), db.sessions, MemoryAudit())
    await _put(db, new, canary, owner="conn_3")
    async with db.session() as s:
        status = await new.status(s)
    assert status.records_by_version == {"v2": 1, "v1": 2}
    assert status.pending == 2 and status.removable_versions == () and status.missing_versions == ()
    assert status.to_dict()["records_by_version"] == {"v2": 1, "v1": 2}


async def test_deleting_a_secret_clears_the_connection_reference(
    db: Database, vault: Vault, canary: str
) -> None:
    async with db.session() as s:
        org = Org(name="acme")
        s.add(org)
        await s.flush()
        conn = Connection(
            org_id=org.id,
            provider="openrouter",
            name="main",
            credential_kind="api_key",
            credential_source="org_key",
        )
        s.add(conn)
        await s.flush()
        info = await vault.put(s, org_id=org.id, owner_id=conn.id, field="api_key", plaintext=Secret(canary))
        conn.secret_id, conn.key_fingerprint, conn.key_set_at = info.id, info.fingerprint, info.set_at
    async with db.session() as s:
        with pytest.raises(Exception):  # noqa: B017 - the FK rejects a dangling reference on both backends
            await s.execute(
                update(Connection).where(Connection.id == conn.id).values(secret_id="sec_missing")
            )
    async with db.session() as s:
        await vault.delete(s, secret_id=info.id, org_id=org.id)
    async with db.session() as s:
        reloaded = await s.get(Connection, conn.id)
        assert reloaded is not None and reloaded.secret_id is None
