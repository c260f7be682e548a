"""`Registry.preload`: orgs read on a caller's session (the API-key cache's) are held afterwards,
requests for them meanwhile share that load, and a failed preload leaves each org a load of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from foundation.audit import MemoryAudit
from providers.vault.keyring import Keyring, StaticKeys, new_master_key
from providers.vault.secret import Secret
from providers.vault.store import Vault
from routing import registry as registry_module
from routing.connections import Connections
from routing.guard import GuardPolicy
from routing.org_rows import OrgRows
from routing.registry import OrgEntry, Registry, UnknownOrgError
from server import accounts
from server.db import Database

HANG_GUARD = 30.0
"""Only a bound on a broken test: nothing here waits on time."""


@pytest.fixture
def vault(db: Database) -> Vault:
    return Vault(StaticKeys(Keyring((new_master_key("v1"),))), db.sessions, MemoryAudit())


@pytest.fixture
async def orgs(db: Database, vault: Vault) -> list[str]:
    ids = []
    async with db.session() as s:
        for i in range(2):
            org = await accounts.create_org(s, f"Tenant {i}")
            await Connections(vault, GuardPolicy()).create(
                s, org.id, provider="openai", name="main", key=Secret(f"sk-CANARY-tenant-{i}-0000")
            )
            ids.append(org.id)
    return ids


@pytest.fixture
async def registry(db: Database, vault: Vault) -> AsyncIterator[Registry]:
    reg = Registry(db.sessions, vault)
    yield reg
    await reg.aclose()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The org ids of every `read_orgs` call."""
    seen: list[list[str]] = []
    real = registry_module.read_orgs

    async def spy(session: AsyncSession, org_ids: Sequence[str]) -> dict[str, OrgRows]:
        seen.append(list(org_ids))
        return await real(session, org_ids)

    monkeypatch.setattr(registry_module, "read_orgs", spy)
    return seen


def reveal(reg: Registry, entry: OrgEntry) -> str:
    return reg.credential(entry.routing.all_connections()[0]).reveal("test")


async def test_preloaded_orgs_are_held_and_get_reads_nothing(
    registry: Registry, db: Database, orgs: list[str], reads: list[list[str]]
) -> None:
    a, b = orgs
    async with db.sessions() as s:
        await registry.preload(s, [a, b, a, "org_missing"])
    assert [sorted(r) for r in reads] == [sorted([a, b, "org_missing"])]
    entry = await registry.get(a)
    assert registry.cached(a) is entry and registry.cached(b) is not None
    assert reveal(registry, entry) == "sk-CANARY-tenant-0-0000"
    assert len(reads) == 1
    with pytest.raises(UnknownOrgError):
        await registry.get("org_missing")  # not cached: its own load says so
    async with db.sessions() as s:
        await registry.preload(s, [a, b])  # held: nothing read
    assert len(reads) == 2


async def test_a_request_during_a_preload_shares_it(
    registry: Registry, db: Database, orgs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = orgs
    started, release = asyncio.Event(), asyncio.Event()
    calls = 0
    real = registry_module.read_orgs

    async def gated(session: AsyncSession, org_ids: Sequence[str]) -> dict[str, OrgRows]:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()
        return await real(session, org_ids)

    monkeypatch.setattr(registry_module, "read_orgs", gated)

    async def preload() -> None:
        async with db.sessions() as s:
            await registry.preload(s, [a])

    async with asyncio.timeout(HANG_GUARD):
        loading = asyncio.create_task(preload())
        await started.wait()
        waiting = asyncio.create_task(registry.get(a))
        await asyncio.sleep(0)  # let it find the preload under way
        release.set()
        await loading
        entry = await waiting
    assert calls == 1 and registry.cached(a) is entry


async def test_a_failed_preload_leaves_each_org_a_load_of_its_own(
    registry: Registry, db: Database, orgs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = orgs
    started, release = asyncio.Event(), asyncio.Event()
    calls = 0
    real = registry_module.read_orgs

    async def fails_once(session: AsyncSession, org_ids: Sequence[str]) -> dict[str, OrgRows]:
        nonlocal calls
        calls += 1
        if calls == 1:
            started.set()
            await release.wait()
            raise ConnectionError("database went away")
        return await real(session, org_ids)

    monkeypatch.setattr(registry_module, "read_orgs", fails_once)

    async def preload() -> None:
        async with db.sessions() as s:
            await registry.preload(s, [a])

    async with asyncio.timeout(HANG_GUARD):
        loading = asyncio.create_task(preload())
        await started.wait()
        waiting = asyncio.create_task(registry.get(a))
        await asyncio.sleep(0)
        release.set()
        with pytest.raises(ConnectionError):
            await loading
        entry = await waiting
    assert calls == 2 and registry.cached(a) is entry
    assert reveal(registry, entry) == "sk-CANARY-tenant-0-0000"


async def test_a_change_during_a_preload_is_not_cached(
    registry: Registry, db: Database, orgs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = orgs
    real = registry_module.read_orgs

    async def changed_meanwhile(session: AsyncSession, org_ids: Sequence[str]) -> dict[str, OrgRows]:
        rows = await real(session, org_ids)
        registry.invalidate(a)  # a change notice arrives while the rows are read
        return rows

    monkeypatch.setattr(registry_module, "read_orgs", changed_meanwhile)
    async with db.sessions() as s:
        await registry.preload(s, [a])
    assert registry.cached(a) is None
