"""The start-up prewarm: the most recently used live keys are held and their orgs loaded, newest
first, never past either cache's size and never a revoked or never-used key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from foundation.audit import MemoryAudit
from providers.vault.keyring import Keyring, StaticKeys, new_master_key
from providers.vault.store import Vault
from routing.registry import Registry
from server import accounts
from server.db import Database
from server.tables import ApiKey
from server.v1.auth import ApiKeyCache
from server.v1.prewarm import Prewarm

_T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


async def _orgs(db: Database) -> dict[str, tuple[str, str]]:
    """Four orgs with a key each: `old` and `new` used (in that order), `never` not used,
    `revoked` used last but revoked. Name -> (org id, key)."""
    out: dict[str, tuple[str, str]] = {}
    async with db.session() as s:
        for minutes, name in ((1, "old"), (2, "new"), (None, "never"), (3, "revoked")):
            org = await accounts.create_org(s, name)
            issued = await accounts.create_api_key(s, org.id, name="k")
            if minutes is not None:
                used = _T0 + timedelta(minutes=minutes)
                await s.execute(update(ApiKey).where(ApiKey.id == issued.info.id).values(last_used_at=used))
            if name == "revoked":
                await accounts.revoke_api_key(s, org.id, issued.info.id)
            out[name] = (org.id, issued.key)
    return out


def _registry(db: Database, size: int = 100) -> Registry:
    vault = Vault(StaticKeys(Keyring((new_master_key("v1"),))), db.sessions, MemoryAudit())
    return Registry(db.read_sessions, vault, cache_size=size)


async def test_recently_used_keys_and_their_orgs_are_loaded(db: Database) -> None:
    orgs = await _orgs(db)
    keys, registry = ApiKeyCache(db.read_sessions), _registry(db)
    prewarm = Prewarm(db.read_sessions, keys, registry, limit=10, batch=1)
    await prewarm.run()
    assert (prewarm.keys, prewarm.orgs) == (2, 2)
    assert set(registry.cached_orgs()) == {orgs["old"][0], orgs["new"][0]}
    for name in ("old", "new"):
        principal = await keys.authenticate(orgs[name][1])
        assert principal is not None and principal.org_id == orgs[name][0]
    assert keys.lookups == 0  # held: no read
    assert await keys.authenticate(orgs["revoked"][1]) is None
    assert await keys.authenticate(orgs["never"][1]) is not None and keys.lookups == 2


async def test_the_newest_come_first_within_the_limit(db: Database) -> None:
    orgs = await _orgs(db)
    keys, registry = ApiKeyCache(db.read_sessions), _registry(db)
    await Prewarm(db.read_sessions, keys, registry, limit=1).run()
    assert registry.cached_orgs() == [orgs["new"][0]]
    await keys.authenticate(orgs["new"][1])
    assert keys.lookups == 0


async def test_it_never_evicts(db: Database) -> None:
    orgs = await _orgs(db)
    keys, registry = ApiKeyCache(db.read_sessions, size=1), _registry(db, size=1)
    prewarm = Prewarm(db.read_sessions, keys, registry, limit=10)
    await prewarm.run()
    assert prewarm.keys == 1 and registry.cached_orgs() == [orgs["new"][0]]
    held = await registry.get(orgs["new"][0])
    await prewarm.run()  # full already: nothing is loaded or replaced
    assert registry.cached_orgs() == [orgs["new"][0]] and await registry.get(orgs["new"][0]) is held


async def test_off_when_the_limit_is_zero(db: Database) -> None:
    await _orgs(db)
    keys, registry = ApiKeyCache(db.read_sessions), _registry(db)
    prewarm = Prewarm(db.read_sessions, keys, registry, limit=0)
    prewarm.start()
    await prewarm.aclose()
    assert registry.cached_orgs() == [] and prewarm.keys == 0
