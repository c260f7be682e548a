"""The API-key cache: one database read per key, revocation noticed by the poll, expiry by the
clock, uses noted in memory for the last-used writer."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from routing.agents import Agents
from routing.config_versions import read_versions
from routing.org_rows import OrgRowsReader
from server import accounts
from server.accounts import Principal
from server.db import Database
from server.v1.auth import ApiKeyCache, Expired, bearer_token
from tests.collector import cycles_left


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _key(db: Database) -> tuple[str, str, str]:
    async with db.session() as s:
        org = await accounts.create_org(s, "Acme")
        issued = await accounts.create_api_key(s, org.id, name="test")
    return org.id, issued.info.id, issued.key


async def test_a_known_key_costs_one_lookup(db: Database) -> None:
    org_id, key_id, key = await _key(db)
    cache = ApiKeyCache(db.sessions)
    principals = [await cache.authenticate(key) for _ in range(5)]
    assert all(p is not None and p.key_id == key_id and p.org_id == org_id for p in principals)
    assert cache.lookups == 1


async def test_unknown_keys_are_remembered_briefly(db: Database) -> None:
    clock = Clock()
    cache = ApiKeyCache(db.sessions, clock=clock)
    assert await cache.authenticate("pb-unknown") is None
    assert await cache.authenticate("pb-unknown") is None
    assert cache.lookups == 1
    clock.now += 6
    assert await cache.authenticate("pb-unknown") is None
    assert cache.lookups == 2
    assert await cache.authenticate("sk-not-ours") is None and cache.lookups == 2


async def test_revocation_is_noticed_by_the_poll(db: Database) -> None:
    org_id, key_id, key = await _key(db)
    cache = ApiKeyCache(db.sessions)
    assert await cache.authenticate(key) is not None
    async with db.session() as s:
        await cache.poll(s)
    assert await cache.authenticate(key) is not None and cache.lookups == 1
    async with db.session() as s:
        await accounts.revoke_api_key(s, org_id, key_id)
    session: AsyncSession
    async with db.session() as session:
        await cache.poll(session)
    assert await cache.authenticate(key) is None


async def test_the_polls_leave_nothing_for_the_cyclic_collector(db: Database, collector_off: None) -> None:
    # Both pollers run every few seconds for the life of a worker; what a poll leaves in
    # reference cycles waits for the next full collection, which walks every live session.
    org_id, _, key = await _key(db)
    cache = ApiKeyCache(db.sessions)
    assert await cache.authenticate(key) is not None
    async with db.session() as s:
        await cache.poll(s)  # the first of each compiles its statement into the engine's cache
        await read_versions(s, [org_id])
        gc.collect()
        for _ in range(5):
            await cache.poll(s)
            await read_versions(s, [org_id, "org_other"])
        left = cycles_left()
    assert not left, left


async def test_dropping_an_org_forgets_its_keys(db: Database) -> None:
    org_id, _, key = await _key(db)
    cache = ApiKeyCache(db.sessions)
    await cache.authenticate(key)
    cache.drop_org(org_id)
    await cache.authenticate(key)
    assert cache.lookups == 2


def test_bearer_token_sources() -> None:
    assert bearer_token(b"Bearer pb-abc") == "pb-abc"
    assert bearer_token(b"bearer  pb-abc ") == "pb-abc"
    assert bearer_token(b"Basic xyz") is None
    assert bearer_token(None, b"pb-x") == "pb-x"
    assert bearer_token(None, None) is None


class WallClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def test_an_expired_key_is_refused_from_memory_by_the_injected_clock(db: Database) -> None:
    clock = WallClock(datetime(2026, 6, 1, tzinfo=UTC))
    async with db.session() as s:
        org = await accounts.create_org(s, "Acme")
        issued = await accounts.create_api_key(s, org.id, name="short", expires="1h", now=clock.now)
    cache = ApiKeyCache(db.sessions, now=clock)
    principal = await cache.check(issued.key)
    assert isinstance(principal, Principal) and principal.expires_at == clock.now + timedelta(hours=1)
    clock.now += timedelta(minutes=59, seconds=59)
    assert isinstance(await cache.check(issued.key), Principal)
    clock.now += timedelta(seconds=1)
    expired = await cache.check(issued.key)
    assert isinstance(expired, Expired) and expired.expires_at == principal.expires_at
    assert await cache.authenticate(issued.key) is None
    assert cache.lookups == 1  # expiry needs no read and no poll
    await cache.last_used.flush()  # the refused use is not noted as one
    async with db.session() as s:
        used = (await accounts.get_api_key(s, org.id, issued.info.id)).last_used_at
    assert used == clock.now - timedelta(seconds=1)


async def test_the_principal_carries_the_keys_scope(db: Database) -> None:
    async with db.session() as s:
        org = await accounts.create_org(s, "Acme")
        await Agents().create(s, org.id, "support", chains={"chat": ["openai/gpt-4o-mini"]})
        scoped = await accounts.create_api_key(
            s, org.id, name="scoped", agent="support", models=["OpenAI/GPT-4o-mini", "sonnet"]
        )
        plain = await accounts.create_api_key(s, org.id, name="plain")
    cache = ApiKeyCache(db.sessions)
    principal = await cache.authenticate(scoped.key)
    assert principal is not None and principal.name == "scoped" and principal.agent_id is not None
    assert principal.allowed_models == frozenset({"openai/gpt-4o-mini", "sonnet"})
    other = await cache.authenticate(plain.key)
    assert other is not None and other.allowed_models is None and other.expires_at is None


async def test_uses_are_noted_in_memory_and_written_by_the_flush(db: Database) -> None:
    clock = WallClock(datetime(2026, 6, 1, tzinfo=UTC))
    org_id, key_id, key = await _key(db)
    cache = ApiKeyCache(db.sessions, now=clock)
    for _ in range(50):
        clock.now += timedelta(seconds=1)
        assert await cache.authenticate(key) is not None
    assert cache.lookups == 1 and cache.last_used.updates == 0
    async with db.session() as s:
        assert (await accounts.get_api_key(s, org_id, key_id)).last_used_at is None
    assert await cache.last_used.flush() == 1
    assert cache.last_used.updates == 1
    async with db.session() as s:
        assert (await accounts.get_api_key(s, org_id, key_id)).last_used_at == clock.now
    assert await cache.last_used.flush() == 0 and cache.last_used.updates == 1


async def test_the_cache_keeps_the_most_recently_used_keys(db: Database) -> None:
    keys = []
    async with db.session() as s:
        for i in range(3):
            org = await accounts.create_org(s, f"Bound {i}")
            keys.append((org.id, (await accounts.create_api_key(s, org.id, name="k")).key))
    cache = ApiKeyCache(db.sessions, size=2)
    for _, key in keys:
        assert await cache.authenticate(key) is not None
    assert cache.lookups == 3
    assert await cache.authenticate(keys[2][1]) is not None and cache.lookups == 3  # held
    assert await cache.authenticate(keys[0][1]) is not None and cache.lookups == 4  # evicted: read again
    cache.drop_org(keys[2][0])
    assert await cache.authenticate(keys[2][1]) is not None and cache.lookups == 5


async def test_concurrent_first_uses_of_a_key_share_one_read(db: Database) -> None:
    _, key_id, key = await _key(db)
    cache = ApiKeyCache(db.sessions)
    principals = await asyncio.gather(*(cache.authenticate(key) for _ in range(10)))
    assert {p.key_id for p in principals if p is not None} == {key_id} and cache.lookups == 1


class Orgs:
    """An `OrgLoader` that notes the orgs each key read offers it, with their rows."""

    def __init__(self, *, fail: bool = False) -> None:
        self.changes = 0
        self.offered: list[tuple[list[str], list[str], int]] = []
        self._fail = fail

    async def preload_rows(
        self, conn: AsyncConnection, read: OrgRowsReader, org_ids: Iterable[str], since: int
    ) -> None:
        if self._fail:
            raise ConnectionError("database went away")
        ids = list(org_ids)
        self.offered.append((ids, sorted(await read.rows(conn, ids)), since))


async def test_a_new_keys_org_is_read_in_the_keys_statement(db: Database) -> None:
    org_id, key_id, key = await _key(db)
    orgs = Orgs()
    orgs.changes = 7
    cache = ApiKeyCache(db.sessions, orgs=orgs)
    assert await cache.authenticate("pb-unknown") is None
    principal = await cache.authenticate(key)
    assert principal is not None and principal.key_id == key_id
    assert orgs.offered == [([org_id], [org_id], 7)]  # its rows, and the count of changes before the read
    assert await cache.authenticate(key) is not None and len(orgs.offered) == 1 and cache.lookups == 2


async def test_a_failed_org_load_does_not_refuse_the_key(db: Database) -> None:
    org_id, key_id, key = await _key(db)
    cache = ApiKeyCache(db.sessions, orgs=Orgs(fail=True))
    principal = await cache.authenticate(key)
    assert principal is not None and principal.org_id == org_id and principal.key_id == key_id
