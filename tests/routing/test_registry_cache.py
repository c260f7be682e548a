"""The registry's bound and its loads: least recently used orgs go and load again, the poll reads
only orgs held, one org's load never waits for another's, hits and misses are counted, and orgs
preloaded are held after it (a request meanwhile shares that
load; a failed preload leaves each org a load of its own), and a new key's org read in the key's
statement is held unless a change came while it was read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Sequence

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from foundation.audit import MemoryAudit
from providers.vault.keyring import Keyring, StaticKeys, new_master_key
from providers.vault.secret import Secret
from providers.vault.store import Vault
from routing import registry as registry_module
from routing.agents import Agents
from routing.config_versions import bump
from routing.connections import Connections
from routing.guard import GuardPolicy
from routing.org_rows import OrgRows
from routing.registry import Registry
from server import accounts
from server.db import Database
from server.v1.auth import ApiKeyCache
from tests.routing.test_org_rows import statements

HANG_GUARD = 30.0
"""Only a bound on a broken test: nothing here waits on time."""


@pytest.fixture
def vault(db: Database) -> Vault:
    return Vault(StaticKeys(Keyring((new_master_key("v1"),))), db.sessions, MemoryAudit())


@pytest.fixture
async def orgs(db: Database, vault: Vault) -> list[str]:
    ids = []
    async with db.session() as s:
        for i in range(3):
            org = await accounts.create_org(s, f"Tenant {i}")
            await Connections(vault, GuardPolicy()).create(
                s, org.id, provider="openai", name="main", key=Secret(f"sk-CANARY-tenant-{i}-0000")
            )
            await Agents().set_org_routing(s, org.id, chains={"chat": ["openai/gpt-4o-mini"]})
            ids.append(org.id)
    return ids


@pytest.fixture
async def small(db: Database, vault: Vault) -> AsyncIterator[Registry]:
    reg = Registry(db.sessions, vault, cache_size=2)
    yield reg
    await reg.aclose()


def reveal(reg: Registry, org_id: str, entry: registry_module.OrgEntry) -> str:
    conn = entry.routing.all_connections()[0]
    assert conn.org_id == org_id
    return reg.credential(conn).reveal("test")


async def test_the_least_recently_used_org_is_dropped_and_loads_again(
    small: Registry, orgs: list[str]
) -> None:
    a, b, c = orgs
    await small.get(a)
    await small.get(b)
    await small.get(a)  # a is now more recent than b
    await small.get(c)
    assert sorted(small.cached_orgs()) == sorted([a, c]) and small.cached(b) is None
    again = await small.get(b)
    assert small.cached(b) is again and small.cached(a) is None
    assert [str(r) for r in again.routing.matrix["chat"]] == ["openai/gpt-4o-mini"]  # type: ignore[index]
    assert reveal(small, b, again) == "sk-CANARY-tenant-1-0000"


async def test_an_evicted_entry_in_use_keeps_its_credentials(small: Registry, orgs: list[str]) -> None:
    a, b, c = orgs
    held = await small.get(a)  # a request routing with a's snapshot
    await small.get(b)
    await small.get(c)
    assert small.cached(a) is None
    assert reveal(small, a, held) == "sk-CANARY-tenant-0-0000"


async def test_the_poll_reads_only_the_orgs_held(
    small: Registry, orgs: list[str], db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, c = orgs
    for org_id in orgs:
        await small.get(org_id)
    asked: list[str] = []
    real = registry_module.read_versions

    async def spy(session: AsyncSession, org_ids: Collection[str]) -> dict[str, int]:
        asked.extend(org_ids)
        return await real(session, org_ids)

    monkeypatch.setattr(registry_module, "read_versions", spy)
    async with db.session() as s:
        await bump(s, b)
    await small.poll_once()
    assert a not in asked and {b, c} <= set(asked)
    assert small.cached_orgs() == [c]  # b moved: dropped


async def test_a_slow_load_of_one_org_does_not_hold_up_another(
    db: Database, vault: Vault, orgs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, _ = orgs
    entered, release = asyncio.Event(), asyncio.Event()
    reads: list[str] = []
    real = registry_module.read_orgs

    async def gated(conn: AsyncConnection, org_ids: Sequence[str]) -> dict[str, OrgRows]:
        reads.extend(org_ids)
        if a in org_ids:
            entered.set()
            await release.wait()
        return await real(conn, org_ids)

    monkeypatch.setattr(registry_module, "read_orgs", gated)
    reg = Registry(db.sessions, vault)
    try:
        first = asyncio.ensure_future(reg.get(a))
        second = asyncio.ensure_future(reg.get(a))  # a second first request: joins the load
        await asyncio.wait_for(entered.wait(), HANG_GUARD)
        entry_b = await asyncio.wait_for(reg.get(b), HANG_GUARD)
        assert reg.cached(b) is entry_b and not first.done() and not second.done()
        release.set()
        assert await first is await second
        assert reads.count(a) == 1 and reads.count(b) == 1
    finally:
        release.set()
        await reg.aclose()


async def test_hits_and_misses_are_counted(small: Registry, orgs: list[str]) -> None:
    def count(metric: str) -> float:
        return REGISTRY.get_sample_value(f"patchbay_cache_{metric}_total", {"cache": "org"}) or 0.0

    before = {m: count(m) for m in ("hits", "misses", "evictions")}
    for org_id in [*orgs, orgs[2]]:
        await small.get(org_id)
    assert small.cached(orgs[0]) is None  # `cached` counts nothing
    assert {m: count(m) - before[m] for m in before} == {"hits": 1, "misses": 3, "evictions": 1}


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The org ids of each `read_orgs` call the registry makes."""
    seen: list[list[str]] = []
    real = registry_module.read_orgs

    async def spy(conn: AsyncConnection, org_ids: Sequence[str]) -> dict[str, OrgRows]:
        seen.append(list(org_ids))
        return await real(conn, org_ids)

    monkeypatch.setattr(registry_module, "read_orgs", spy)
    return seen


async def test_orgs_loading_together_share_one_read(
    db: Database, vault: Vault, orgs: list[str], batches: list[list[str]]
) -> None:
    reg = Registry(db.sessions, vault)
    try:
        entries = await asyncio.gather(
            *(reg.get(o) for o in [*orgs, *orgs, "org_missing"]), return_exceptions=True
        )
        assert [sorted(b) for b in batches] == [sorted([*orgs, "org_missing"])]
        assert isinstance(entries[-1], registry_module.UnknownOrgError)
        for org_id, entry in zip(orgs, entries[:3], strict=True):
            assert isinstance(entry, registry_module.OrgEntry) and entry is entries[orgs.index(org_id) + 3]
            assert reveal(reg, org_id, entry) == f"sk-CANARY-tenant-{orgs.index(org_id)}-0000"
    finally:
        await reg.aclose()


async def test_preloaded_orgs_are_held_and_get_reads_nothing(
    db: Database, vault: Vault, orgs: list[str], batches: list[list[str]]
) -> None:
    a, b, _ = orgs
    reads = batches

    def misses() -> float:
        return REGISTRY.get_sample_value("patchbay_cache_misses_total", {"cache": "org"}) or 0.0

    missed = misses()
    reg = Registry(db.sessions, vault)
    try:
        await reg.preload([a, b, a, "org_missing"])
        assert [sorted(r) for r in reads] == [sorted([a, b, "org_missing"])]
        assert misses() == missed + 3  # each load a miss, as `get` counts one
        entry = await reg.get(a)
        assert reg.cached(a) is entry and reg.cached(b) is not None and len(reads) == 1
        assert reveal(reg, a, entry) == "sk-CANARY-tenant-0-0000"
        with pytest.raises(registry_module.UnknownOrgError):
            await reg.get("org_missing")  # not cached
        made = len(reads)
        await reg.preload([a, b])  # held: nothing read
        assert len(reads) == made and reg.cached("org_missing") is None
    finally:
        await reg.aclose()


async def preload_with_a_waiter(
    db: Database, vault: Vault, org_id: str, monkeypatch: pytest.MonkeyPatch, *, fail_first: bool
) -> tuple[Registry, int, BaseException | None, registry_module.OrgEntry]:
    """Preload `org_id` while a request for it arrives mid-read; the first read fails if asked.
    Returns the registry, the reads made, the preload's error and the request's entry."""
    started, release = asyncio.Event(), asyncio.Event()
    calls = 0
    real = registry_module.read_orgs

    async def gated(conn: AsyncConnection, org_ids: Sequence[str]) -> dict[str, OrgRows]:
        nonlocal calls
        calls += 1
        if calls == 1:
            started.set()
            await release.wait()
            if fail_first:
                raise ConnectionError("database went away")
        return await real(conn, org_ids)

    monkeypatch.setattr(registry_module, "read_orgs", gated)
    reg = Registry(db.sessions, vault)

    async def preload() -> None:
        await reg.preload([org_id])

    async with asyncio.timeout(HANG_GUARD):
        loading = asyncio.ensure_future(preload())
        await started.wait()
        waiting = asyncio.ensure_future(reg.get(org_id))
        await asyncio.sleep(0)  # one loop turn: the request finds the preload under way
        assert not waiting.done()
        release.set()
        error = (await asyncio.gather(loading, return_exceptions=True))[0]
        entry = await waiting
    return reg, calls, error, entry


@pytest.mark.parametrize("fail_first", [False, True], ids=["shared", "failed-then-own-load"])
async def test_a_request_during_a_preload_gets_its_entry(
    db: Database, vault: Vault, orgs: list[str], monkeypatch: pytest.MonkeyPatch, fail_first: bool
) -> None:
    """It shares the preload's read; when that read fails, a load of the org's own serves it."""
    a = orgs[0]
    reg, calls, error, entry = await preload_with_a_waiter(db, vault, a, monkeypatch, fail_first=fail_first)
    try:
        assert reg.cached(a) is entry and reveal(reg, a, entry) == "sk-CANARY-tenant-0-0000"
        if fail_first:
            assert isinstance(error, ConnectionError) and calls == 2
        else:
            assert error is None and calls == 1
    finally:
        await reg.aclose()


async def test_a_change_during_a_preload_is_not_cached(
    db: Database, vault: Vault, orgs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a = orgs[0]
    reg = Registry(db.sessions, vault)
    real = registry_module.read_orgs

    async def changed_meanwhile(conn: AsyncConnection, org_ids: Sequence[str]) -> dict[str, OrgRows]:
        rows = await real(conn, org_ids)
        reg.invalidate(a)  # a change notice arrives while the rows are read
        return rows

    monkeypatch.setattr(registry_module, "read_orgs", changed_meanwhile)
    try:
        await reg.preload([a])
        assert reg.cached(a) is None
    finally:
        await reg.aclose()


async def test_a_new_key_and_its_org_are_one_statement_and_get_reads_nothing(
    db: Database, vault: Vault, orgs: list[str]
) -> None:
    a, b, _ = orgs
    async with db.session() as s:
        key = (await accounts.create_api_key(s, a, name="first")).key
    reg = Registry(db.sessions, vault)
    keys = ApiKeyCache(db.sessions, orgs=reg)
    try:
        await reg.get(b)  # the platform's rows: read once, for every org
        with statements(db) as seen:
            principal = await keys.authenticate(key)
            assert principal is not None and principal.org_id == a
            entry = await reg.get(a)
        assert len([q for q in seen if q.lstrip().upper().startswith("SELECT")]) == 1
        assert reg.cached(a) is entry and reveal(reg, a, entry) == "sk-CANARY-tenant-0-0000"
    finally:
        await reg.aclose()


async def test_rows_read_across_a_change_are_not_loaded(db: Database, vault: Vault, orgs: list[str]) -> None:
    """A change notice while a key and its org's rows were read: the rows may predate the change,
    so the org is left to a load of its own, which reads it afresh."""
    a, b, _ = orgs
    async with db.session() as s:
        key = (await accounts.create_api_key(s, a, name="first")).key
    reg = Registry(db.sessions, vault)
    try:
        async with db.engine.connect() as conn:
            since = reg.changes
            found, read = await accounts.authenticate_api_keys_with_orgs(conn, [key])
            reg.invalidate(b)  # any change: which orgs it touched is not tracked
            await reg.preload_rows(conn, read, [a], since)
            assert reg.cached(a) is None
            await reg.preload_rows(conn, read, [a], reg.changes)  # none meanwhile: held
            assert reg.cached(a) is not None and found[key].org_id == a
    finally:
        await reg.aclose()
