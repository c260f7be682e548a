"""The API-key cache: one database read per key, revocation noticed by the poll."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from server import accounts
from server.db import Database
from server.v1.auth import ApiKeyCache, bearer_token


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
