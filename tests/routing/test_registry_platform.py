"""The registry and platform connections: every org's snapshot includes them, their keys open
under the operator's scope, and a platform change drops every org, in process, by the config
poll and over Redis (on both databases)."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from billing.policy import billing_policy
from foundation.audit import MemoryAudit
from providers.contract import BillingSource, ProviderId
from providers.vault.keyring import Keyring, StaticKeys, new_master_key
from providers.vault.secret import Secret
from providers.vault.store import Vault
from routing.connections import Connections
from routing.guard import GuardPolicy
from routing.platform import PLATFORM_SCOPE
from routing.registry import Registry
from server import accounts
from server.db import Database

PLATFORM_KEY = "sk-CANARY-platform-000000000"
PLATFORM_KEY_2 = "sk-CANARY-platform-111111111"


@pytest.fixture
def vault(db: Database) -> Vault:
    return Vault(StaticKeys(Keyring((new_master_key("v1"),))), db.sessions, MemoryAudit())


@pytest.fixture
async def orgs(db: Database, vault: Vault) -> list[str]:
    """Two orgs without connections of their own, and one platform connection."""
    async with db.session() as s:
        ids = [(await accounts.create_org(s, name)).id for name in ("Acme", "Beta")]
        await Connections(vault, GuardPolicy()).create(s, None, provider="openai", key=Secret(PLATFORM_KEY))
    return ids


async def test_every_org_sees_the_platform_connection_and_its_key(
    db: Database, vault: Vault, orgs: list[str]
) -> None:
    registry = Registry(db.sessions, vault, billing_policy=billing_policy)
    try:
        for org_id in orgs:
            entry = await registry.get(org_id)
            [view] = entry.routing.profiles[ProviderId.OPENAI]
            assert view.platform and view.profile_id == "openai:platform"
            assert view.billing_source is BillingSource.PLATFORM and view.org_id == org_id
            assert registry.credential(view).reveal("test") == PLATFORM_KEY
    finally:
        await registry.aclose()


async def test_a_platform_change_in_process_drops_every_org(
    db: Database, vault: Vault, orgs: list[str]
) -> None:
    registry = Registry(db.sessions, vault)
    told: list[str] = []
    registry.add_listener(told.append)
    try:
        before = {o: await registry.get(o) for o in orgs}
        async with db.session() as s:
            await Connections(vault, GuardPolicy()).replace_key(
                s, None, "openai:platform", Secret(PLATFORM_KEY_2)
            )
        registry.changed(PLATFORM_SCOPE)
        assert sorted(told) == sorted(orgs) and registry.cached_orgs() == []
        for org_id in orgs:
            after = await registry.get(org_id)
            assert after is not before[org_id]
            assert (
                registry.credential(after.routing.profiles[ProviderId.OPENAI][0]).reveal("t")
                == PLATFORM_KEY_2
            )
    finally:
        await registry.aclose()


async def test_a_platform_change_elsewhere_reaches_every_org_by_the_poll(
    db: Database, vault: Vault, orgs: list[str]
) -> None:
    registry = Registry(db.sessions, vault, poll_interval=3600)
    try:
        for org_id in orgs:
            await registry.get(org_id)
        await registry.poll_once()
        assert sorted(registry.cached_orgs()) == sorted(orgs)  # nothing moved: nothing dropped
        async with db.session() as s:  # another process (the CLI): no notice, only the counter
            await Connections(vault, GuardPolicy()).update(s, None, "openai:platform", enabled=False)
        await registry.poll_once()
        assert registry.cached_orgs() == []
        entry = await registry.get(orgs[0])
        assert entry.routing.profiles[ProviderId.OPENAI][0].status.value == "disabled"
    finally:
        await registry.aclose()


async def test_a_platform_notice_over_redis_drops_every_org_of_another_replica(
    db: Database, vault: Vault, orgs: list[str], redis_url: str, unique_prefix: str
) -> None:
    channel = unique_prefix + "config"
    one = Registry(db.sessions, vault, redis=Redis.from_url(redis_url), channel=channel, poll_interval=3600)
    two = Registry(db.sessions, vault, redis=Redis.from_url(redis_url), channel=channel, poll_interval=3600)
    await one.start()
    await two.start()
    try:
        await asyncio.wait_for(asyncio.gather(one.wait_subscribed(), two.wait_subscribed()), 5)
        for org_id in orgs:
            await two.get(org_id)
        dropped: set[str] = set()
        done = asyncio.Event()

        def seen(org_id: str) -> None:
            dropped.add(org_id)
            if dropped == set(orgs):
                done.set()

        two.add_listener(seen)
        one.changed(PLATFORM_SCOPE)  # no version bump: only the notice can drop them
        await asyncio.wait_for(done.wait(), 5)
        assert two.cached_orgs() == []
    finally:
        await one.aclose()
        await two.aclose()
