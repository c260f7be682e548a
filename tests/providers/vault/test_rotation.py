"""Rotation over SQLite and PostgreSQL: under load, after a crash, and with a damaged record."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from foundation.audit import MemoryAudit
from providers.vault.crypto import MasterKey
from providers.vault.errors import RotationIncomplete
from providers.vault.keyring import FileKeys, Keyring, KeySource, StaticKeys, format_keyring, new_master_key
from providers.vault.rotation import RotationProgress
from providers.vault.secret import Secret
from providers.vault.store import Vault
from providers.vault.tables import VaultRotation, VaultSecret
from server.db import Database
from tests.providers.vault.conftest import canary_key


async def _fill(db: Database, vault: Vault, n: int) -> dict[str, tuple[str, str]]:
    """n secrets; returns secret id -> (owner id, plaintext)."""
    made: dict[str, tuple[str, str]] = {}
    async with db.session() as s:
        for i in range(n):
            owner, key = f"conn_{i:03d}", canary_key()
            info = await vault.put(s, org_id="org_a", owner_id=owner, field="api_key", plaintext=Secret(key))
            made[info.id] = (owner, key)
    return made


async def _versions(db: Database) -> dict[str, int]:
    async with db.session() as s:
        result = await s.execute(
            select(VaultSecret.key_version, func.count()).group_by(VaultSecret.key_version)
        )
        return {v: int(n) for v, n in result.all()}


@pytest.mark.parametrize("deployment", ["env", "file"])
async def test_rotation_under_load_has_zero_failed_reads(
    db: Database, tmp_path: Path, deployment: str
) -> None:
    v1, v2 = new_master_key("v1"), new_master_key("v2")
    made = await _fill(db, Vault(StaticKeys(Keyring((v1,))), db.sessions, MemoryAudit()), 40)

    rotator_keys: KeySource
    reader_keys: KeySource
    if deployment == "env":
        # Every server already has the new key first and the old one after it.
        rotator_keys = reader_keys = StaticKeys(Keyring((v2, v1)))
    else:
        # The embedded default: the rotate command adds v2 to the key file while a server
        # that loaded only v1 keeps serving from the same file.
        path = tmp_path / "master.key"
        path.write_text(format_keyring(Keyring((v1,))))
        path.chmod(0o600)
        reader_keys, file_rotator = FileKeys(path), FileKeys(path)
        file_rotator.add_version()
        rotator_keys = file_rotator
    reader = Vault(reader_keys, db.sessions, MemoryAudit())
    rotator = Vault(rotator_keys, db.sessions, MemoryAudit())

    stop = asyncio.Event()
    failures: list[str] = []
    reads = 0
    seen_versions: set[str] = set()

    async def read_forever(offset: int) -> None:
        nonlocal reads
        items = list(made.items())
        i = offset
        while not stop.is_set():
            secret_id, (owner, key) = items[i % len(items)]
            i += 1
            try:
                cred = await reader.credential(secret_id, org_id="org_a", owner_id=owner, field="api_key")
                if cred.reveal("load-test") != key:
                    failures.append(f"{secret_id}: wrong plaintext")
                seen_versions.add(cred.key_version)
            except Exception as exc:
                failures.append(f"{secret_id}: {type(exc).__name__}: {exc}")
            reads += 1

    reads_at_batch: list[int] = []

    def progress(p: RotationProgress) -> None:
        reads_at_batch.append(reads)

    readers = [asyncio.create_task(read_forever(k * 7)) for k in range(4)]
    try:
        result = await rotator.rotate(batch_size=4, progress=progress)
    finally:
        stop.set()
        await asyncio.gather(*readers)

    assert failures == []
    assert result.target_version == "v2" and result.rewrapped == 40 and not result.resumed
    assert await _versions(db) == {"v2": 40}
    # The readers really ran while batches were committing, and saw both versions.
    assert len(reads_at_batch) >= 10
    assert reads_at_batch[-1] > reads_at_batch[0]
    assert seen_versions == {"v1", "v2"}
    for secret_id, (owner, key) in made.items():
        assert (await reader.credential(secret_id, org_id="org_a", owner_id=owner, field="api_key")).reveal(
            "t"
        ) == key


class Crash(Exception):
    pass


async def test_a_crash_after_some_batches_resumes_and_finishes(db: Database) -> None:
    v1, v2 = new_master_key("v1"), new_master_key("v2")
    made = await _fill(db, Vault(StaticKeys(Keyring((v1,))), db.sessions, MemoryAudit()), 10)
    vault = Vault(StaticKeys(Keyring((v2, v1))), db.sessions, MemoryAudit())

    def crash_after_two(p: RotationProgress) -> None:
        if p.batches == 2:
            raise Crash("injected")

    with pytest.raises(Crash):
        await vault.rotate(batch_size=3, progress=crash_after_two)
    assert await _versions(db) == {"v2": 6, "v1": 4}
    async with db.session() as s:
        status = await vault.status(s)
    assert status.last_rotation is not None and status.last_rotation.finished_at is None
    assert status.last_rotation.rewrapped == 6

    # Meanwhile a server that has not seen v2 writes a secret under v1 with the lowest
    # possible id: only the final pass from the start can find it.
    async with db.session() as s:
        old = Vault(StaticKeys(Keyring((v1,))), db.sessions, MemoryAudit())
        info = await old.put(
            s, org_id="org_a", owner_id="conn_late", field="api_key", plaintext=Secret("sk-late-key-000000")
        )
        await s.execute(
            update(VaultSecret).where(VaultSecret.id == info.id).values(id="sec_00000000000000000000")
        )

    result = await vault.rotate(batch_size=3)
    assert result.resumed and result.rewrapped == 11
    assert await _versions(db) == {"v2": 11}
    async with db.session() as s:
        runs = (await s.scalars(select(VaultRotation))).all()
    assert len(runs) == 1 and runs[0].finished_at is not None and runs[0].rewrapped == 11
    late = await vault.credential(
        "sec_00000000000000000000", org_id="org_a", owner_id="conn_late", field="api_key"
    )
    assert late.reveal("t") == "sk-late-key-000000"
    for secret_id, (owner, key) in made.items():
        assert (await vault.credential(secret_id, org_id="org_a", owner_id=owner, field="api_key")).reveal(
            "t"
        ) == key


class CrashingKeys:
    """Delegates to real keys but dies on the nth lookup: a crash in the middle of a batch."""

    def __init__(self, inner: StaticKeys, die_at: int) -> None:
        self.inner, self.die_at, self.calls = inner, die_at, 0
        self.description, self.writable = inner.description, False

    def current(self) -> MasterKey:
        return self.inner.current()

    def get(self, version: str) -> MasterKey:
        self.calls += 1
        if self.calls == self.die_at:
            raise Crash("injected mid-batch")
        return self.inner.get(version)

    def versions(self) -> tuple[str, ...]:
        return self.inner.versions()

    def refresh(self) -> None:
        return None


async def test_a_crash_inside_a_batch_rolls_that_batch_back(db: Database) -> None:
    v1, v2 = new_master_key("v1"), new_master_key("v2")
    await _fill(db, Vault(StaticKeys(Keyring((v1,))), db.sessions, MemoryAudit()), 9)
    keys = StaticKeys(Keyring((v2, v1)))
    with pytest.raises(Crash):
        await Vault(CrashingKeys(keys, die_at=5), db.sessions, MemoryAudit()).rotate(batch_size=3)
    assert await _versions(db) == {"v2": 3, "v1": 6}  # batch 2 had re-wrapped one record, then rolled back
    result = await Vault(keys, db.sessions, MemoryAudit()).rotate(batch_size=3)
    assert result.resumed and await _versions(db) == {"v2": 9}


async def test_a_damaged_record_is_reported_and_the_rest_rotate(db: Database) -> None:
    v1, v2 = new_master_key("v1"), new_master_key("v2")
    made = await _fill(db, Vault(StaticKeys(Keyring((v1,))), db.sessions, MemoryAudit()), 5)
    bad_id = sorted(made)[2]
    async with db.session() as s:
        row = await s.get(VaultSecret, bad_id)
        assert row is not None
        row.wrapped_key = bytes([row.wrapped_key[0] ^ 1]) + row.wrapped_key[1:]
    vault = Vault(StaticKeys(Keyring((v2, v1))), db.sessions, MemoryAudit())
    with pytest.raises(RotationIncomplete) as err:
        await vault.rotate(batch_size=2)
    assert err.value.failed_ids == (bad_id,) and "v2" in str(err.value)
    assert await _versions(db) == {"v2": 4, "v1": 1}


async def test_nothing_to_do_is_a_quick_finished_run(db: Database) -> None:
    v1 = new_master_key("v1")
    vault = Vault(StaticKeys(Keyring((v1,))), db.sessions, MemoryAudit())
    await _fill(db, vault, 2)
    result = await vault.rotate()
    assert (result.rewrapped, result.batches, result.resumed) == (0, 0, False)
    with pytest.raises(ValueError):
        await vault.rotate(batch_size=0)
