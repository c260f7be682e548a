"""The registry: snapshots loaded once per org, dropped on change (in process, by poll, over Redis)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection

from foundation.audit import MemoryAudit
from providers.contract import ErrorClass, WireProtocol
from providers.credentials import NoCredential
from providers.vault.keyring import Keyring, StaticKeys, new_master_key
from providers.vault.secret import Secret
from providers.vault.store import Vault
from routing import registry as registry_module
from routing.agents import Agents
from routing.catalog import default_catalog
from routing.config_versions import read_versions
from routing.connection_credentials import EnvReferenceCredential
from routing.connections import Connections
from routing.cooldown_store import CooldownStore, InProcessCooldownStore, RedisCooldownStore
from routing.env_reference import allowed_environ
from routing.errors import AllAttemptsFailedError
from routing.executor import Executor
from routing.guard import GuardPolicy
from routing.org_rows import OrgRows
from routing.redis_health import redis_client
from routing.registry import Registry, UnknownOrgError
from routing.resolver import Resolver, RouteRequest
from routing.tables import Connection
from server import accounts
from server.db import Database
from tests.emulators.harness import free_port
from tests.emulators.tcp_proxy import TcpProxy
from tests.routing.fakes import FakeChatAdapter, FakeWallClock, chat, fail

KEY_1 = "sk-CANARY-registry-one-000000"
KEY_2 = "sk-CANARY-registry-two-000000"


@pytest.fixture
def vault(db: Database) -> Vault:
    return Vault(StaticKeys(Keyring((new_master_key("v1"),))), db.sessions, MemoryAudit())


@pytest.fixture
async def org_id(db: Database, vault: Vault) -> str:
    async with db.session() as s:
        org = await accounts.create_org(s, "Acme")
        await Connections(vault, GuardPolicy()).create(
            s, org.id, provider="openai", name="main", key=Secret(KEY_1)
        )
        await Agents().set_org_routing(s, org.id, chains={"chat": ["openai/gpt-4o-mini"]})
        await Agents().create(s, org.id, "support", default_model="openai/gpt-4o")
    return org.id


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The org ids of each read of org rows the registry makes (one per load)."""
    made: list[list[str]] = []
    real = registry_module.read_orgs

    async def counted(conn: AsyncConnection, org_ids: Sequence[str]) -> dict[str, OrgRows]:
        made.append(list(org_ids))
        return await real(conn, org_ids)

    monkeypatch.setattr(registry_module, "read_orgs", counted)
    return made


@pytest.fixture
async def registry(db: Database, vault: Vault, loads: list[list[str]]) -> AsyncIterator[Registry]:
    reg = Registry(db.sessions, vault, environ={"OPENAI_KEY_ENV": "sk-from-env"})
    yield reg
    await reg.aclose()


async def test_loads_once_then_serves_from_memory(
    registry: Registry, org_id: str, loads: list[list[str]]
) -> None:
    first = await registry.get(org_id)
    again = await registry.get(org_id)
    assert again is first and len(loads) == 1
    assert [c.profile_id for c in first.routing.all_connections()] == ["openai:main"]
    assert set(first.agent_names.values()) == {"support"}
    assert str(first.routing.matrix["chat"][0]) == "openai/gpt-4o-mini"  # type: ignore[index]


async def test_concurrent_first_requests_share_one_load(
    registry: Registry, org_id: str, loads: list[list[str]]
) -> None:
    entries = await asyncio.gather(*(registry.get(org_id) for _ in range(20)))
    assert all(e is entries[0] for e in entries) and len(loads) == 1


async def test_credential_is_cached_and_reveals_the_key(registry: Registry, org_id: str) -> None:
    entry = await registry.get(org_id)
    conn = entry.routing.all_connections()[0]
    credential = registry.credential(conn)
    assert credential is registry.credential(conn)
    assert credential.reveal("test") == KEY_1
    assert KEY_1 not in repr(credential)


async def test_change_in_process_drops_the_snapshot_and_tells_listeners(
    registry: Registry, org_id: str, db: Database, vault: Vault
) -> None:
    told: list[str] = []
    registry.add_listener(told.append)
    before = await registry.get(org_id)
    async with db.session() as s:
        await Connections(vault, GuardPolicy()).replace_key(s, org_id, "openai:main", Secret(KEY_2))
    registry.changed(org_id)
    assert told == [org_id]
    after = await registry.get(org_id)
    assert after is not before
    assert registry.credential(after.routing.all_connections()[0]).reveal("test") == KEY_2


async def test_poll_picks_up_a_change_made_by_another_process(
    registry: Registry, org_id: str, db: Database, vault: Vault
) -> None:
    before = await registry.get(org_id)
    await registry.poll_once()
    assert await registry.get(org_id) is before  # nothing changed: nothing reloaded
    # The CLI path: the service bumps the org's version; nobody calls `changed`.
    async with db.session() as s:
        await Connections(vault, GuardPolicy()).update(s, org_id, "openai:main", enabled=False)
        assert (await read_versions(s, [org_id]))[org_id] > before.version
    await registry.poll_once()
    after = await registry.get(org_id)
    assert after is not before
    assert after.routing.all_connections()[0].status.value == "disabled"
    assert isinstance(registry.credential(after.routing.all_connections()[0]), NoCredential)


async def test_a_change_during_a_load_is_not_cached(
    registry: Registry, org_id: str, loads: list[list[str]]
) -> None:
    load = asyncio.ensure_future(registry.get(org_id))
    await asyncio.sleep(0)  # the load has started and awaits the database
    registry.invalidate(org_id)
    await load
    await registry.get(org_id)
    assert len(loads) == 2


async def test_unknown_org(registry: Registry) -> None:
    with pytest.raises(UnknownOrgError):
        await registry.get("org_missing")


async def test_env_reference_credential(registry: Registry, db: Database, vault: Vault) -> None:
    async with db.session() as s:
        org = await accounts.create_org(s, "EnvCo")
        await Connections(vault, GuardPolicy(), env_references=frozenset({"OPENAI_KEY_ENV"})).create(
            s, org.id, provider="openai", name="ops", env_reference="OPENAI_KEY_ENV"
        )
    entry = await registry.get(org.id)
    credential = registry.credential(entry.routing.all_connections()[0])
    assert isinstance(credential, EnvReferenceCredential)
    assert credential.reveal("test") == "sk-from-env" and credential.fingerprint == "env:OPENAI_KEY_ENV"


@pytest.mark.parametrize("name", ["PATCHBAY_MASTER_KEY", "NOT_LISTED_KEY"])
async def test_a_stored_env_reference_outside_the_allowlist_reads_nothing(
    db: Database, vault: Vault, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A row saved before the allowlist (or written straight to the database) must not leak:
    the registry reads only the allowlisted environment, and never a PATCHBAY_* name even when
    a caller hands it the raw environment."""
    canary = "CANARY-" + name
    raw = {name: canary, "OPENAI_KEY_ENV": "sk-from-env"}
    async with db.session() as s:
        org = await accounts.create_org(s, "OldRow")
        info = await Connections(vault, GuardPolicy()).create(
            s, org.id, provider="openai", name="old", key=Secret(KEY_1)
        )
        row = await s.get(Connection, info.id)
        assert row is not None
        row.secret_id, row.env_reference = None, name
    for environ in (allowed_environ({"OPENAI_KEY_ENV"}, raw), raw if name.startswith("PATCHBAY_") else {}):
        reg = Registry(db.sessions, vault, environ=environ)
        try:
            entry = await reg.get(org.id)
            credential = reg.credential(entry.routing.all_connections()[0])
        finally:
            await reg.aclose()
        assert isinstance(credential, NoCredential)
    assert "environment reference refused" in caplog.text and canary not in caplog.text


async def test_redis_notice_reaches_another_replica(
    db: Database, vault: Vault, org_id: str, redis_url: str, unique_prefix: str
) -> None:
    channel = unique_prefix + "config"
    one = Registry(db.sessions, vault, redis=Redis.from_url(redis_url), channel=channel, poll_interval=3600)
    two = Registry(db.sessions, vault, redis=Redis.from_url(redis_url), channel=channel, poll_interval=3600)
    await one.start()
    await two.start()
    try:
        await asyncio.wait_for(asyncio.gather(one.wait_subscribed(), two.wait_subscribed()), 5)
        await two.get(org_id)
        dropped = asyncio.Event()
        two.add_listener(lambda org: dropped.set() if org == org_id else None)
        own: list[str] = []
        one.add_listener(own.append)
        one.changed(org_id)
        await asyncio.wait_for(dropped.wait(), 5)
        assert two.cached_orgs() == []
        assert own == [org_id]  # its own notice is not applied twice
    finally:
        await one.aclose()
        await two.aclose()


async def until(condition: Callable[[], bool]) -> None:
    """Bounded wait for a background loop's next round (the condition decides, not the time)."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached within 5 s")


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "patchbay.routing" and r.levelno == logging.WARNING]


async def test_redis_down_neither_crashes_nor_hides_changes(
    db: Database, vault: Vault, org_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="patchbay.routing")
    # A port that accepts and drops every connection, so the test can count subscribe attempts.
    proxy = await TcpProxy("127.0.0.1", free_port()).open()
    registry = Registry(
        db.sessions,
        vault,
        redis=redis_client(f"redis://:hunter2-secret@127.0.0.1:{proxy.port}/0"),
        channel="pbtest:config",
        poll_interval=0.02,
    )
    await registry.start()
    try:
        await until(lambda: proxy.accepted >= 3)  # the subscriber tried again, and again
        before = await registry.get(org_id)
        await asyncio.wait_for(registry._publish(org_id), 5)  # a lost notice raises nothing
        # The config poll still carries a change made elsewhere.
        async with db.session() as s:
            await Connections(vault, GuardPolicy()).update(s, org_id, "openai:main", enabled=False)
        await registry.poll_once()
        after = await registry.get(org_id)
        assert after is not before and after.routing.all_connections()[0].status.value == "disabled"
        assert all(not task.done() for task in registry._tasks)  # the subscriber and the poll live on
    finally:
        await registry.aclose()
        await proxy.close()
    [warning] = warnings(caplog)
    assert warning.getMessage().startswith("config notice channel unreachable")
    assert set(getattr(warning, "fields", {})) == {"error"}
    logged = " ".join(r.getMessage() + str(getattr(r, "fields", "")) for r in caplog.records)
    assert "hunter2" not in logged


@pytest.mark.redis
async def test_notices_flow_again_after_an_outage(
    db: Database,
    vault: Vault,
    org_id: str,
    redis_url: str,
    unique_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="patchbay.routing")
    channel = unique_prefix + "config"
    async with TcpProxy.to_url(redis_url) as proxy:
        one = Registry(db.sessions, vault, redis=redis_client(redis_url), channel=channel, poll_interval=3600)
        two = Registry(
            db.sessions, vault, redis=redis_client(proxy.url(redis_url)), channel=channel, poll_interval=0.02
        )
        await one.start()
        await two.start()
        try:
            await asyncio.wait_for(asyncio.gather(one.wait_subscribed(), two.wait_subscribed()), 5)
            await proxy.close()
            await until(lambda: two._notices.down)
            await proxy.open()
            await until(lambda: not two._notices.down)  # Redis confirmed the new subscription
            await two.get(org_id)
            dropped = asyncio.Event()
            two.add_listener(lambda org: dropped.set() if org == org_id else None)
            one.changed(org_id)  # no version bump: only the notice can drop it
            await asyncio.wait_for(dropped.wait(), 5)
        finally:
            await one.aclose()
            await two.aclose()
    assert [
        (r.levelname, r.getMessage().split(";")[0]) for r in caplog.records if r.name == "patchbay.routing"
    ] == [
        ("WARNING", "config notice channel unreachable"),
        ("INFO", "config notice channel reachable again"),
    ]


async def test_a_cancelled_caller_does_not_cancel_the_shared_load(
    registry: Registry, org_id: str, loads: list[list[str]]
) -> None:
    first = asyncio.ensure_future(registry.get(org_id))
    second = asyncio.ensure_future(registry.get(org_id))
    await asyncio.sleep(0)  # both callers wait on the one load
    first.cancel()
    entry = await second
    assert first.cancelled()
    assert entry.routing.org_id == org_id and len(loads) == 1
    assert await registry.get(org_id) is entry


async def test_a_request_holding_the_old_snapshot_keeps_a_working_credential(
    registry: Registry, org_id: str, db: Database, vault: Vault
) -> None:
    old = await registry.get(org_id)
    conn = old.routing.all_connections()[0]
    registry.changed(org_id)  # e.g. an agent was edited while a request was being routed
    assert registry.credential(conn).reveal("test") == KEY_1
    async with db.session() as s:
        await Connections(vault, GuardPolicy()).replace_key(s, org_id, "openai:main", Secret(KEY_2))
    registry.changed(org_id)
    await registry.get(org_id)
    assert registry.credential(conn).reveal("test") == KEY_2  # the reload swapped it in


async def test_a_deleted_connection_forgets_its_credential(
    registry: Registry, org_id: str, db: Database, vault: Vault
) -> None:
    conn = (await registry.get(org_id)).routing.all_connections()[0]
    async with db.session() as s:
        await Connections(vault, GuardPolicy()).delete(s, org_id, "openai:main")
    registry.changed(org_id)
    assert (await registry.get(org_id)).routing.all_connections() == ()
    assert isinstance(registry.credential(conn), NoCredential)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def cooldowns(request: pytest.FixtureRequest) -> AsyncIterator[CooldownStore]:
    """The store a reload clears: in process, or Redis shared by every replica."""
    if request.param == "memory":
        yield InProcessCooldownStore()
        return
    redis_url: str = request.getfixturevalue("redis_url")
    store = RedisCooldownStore(Redis.from_url(redis_url), prefix=request.getfixturevalue("unique_prefix"))
    yield store
    await store.aclose()


class Server:
    """One serving process: its registry and an executor over the same cooldown store."""

    def __init__(self, db: Database, vault: Vault, cooldowns: CooldownStore) -> None:
        self.registry = Registry(db.sessions, vault, cooldowns=cooldowns)
        self.adapter = FakeChatAdapter()
        self.executor = Executor(
            resolver=Resolver(default_catalog()),
            store=cooldowns,
            credentials=self.registry.credential,
            adapters={WireProtocol.OPENAI_CHAT: self.adapter},
            clock=FakeWallClock(),
        )

    async def ask(self, org_id: str) -> str:
        """The trace header of one chat request; the adapter records the key each attempt used."""
        entry = await self.registry.get(org_id)
        try:
            result = await self.executor.complete(entry.routing, RouteRequest(), chat())
        except AllAttemptsFailedError as exc:
            return exc.trace.header()
        return result.trace.header()


@pytest.fixture
async def server(db: Database, vault: Vault, cooldowns: CooldownStore) -> AsyncIterator[Server]:
    srv = Server(db, vault, cooldowns)
    yield srv
    await srv.registry.aclose()


@dataclass
class OtherProcess:
    """The CLI's view: its own engine and vault over the same database and master key.

    Its writes bump the org's config version; nobody calls `changed` in the serving process.
    """

    db: Database
    connections: Connections


@pytest.fixture
async def other_process(db_url: str, db: Database, vault: Vault) -> AsyncIterator[OtherProcess]:
    other = Database(db_url)
    yield OtherProcess(
        other, Connections(Vault(vault.keys, other.sessions, MemoryAudit()), GuardPolicy(), actor="cli")
    )
    await other.dispose()


async def disabled_by_a_bad_key(server: Server, org_id: str) -> None:
    """The org's only profile answers 401 once: it is disabled, and the next request skips it."""
    server.adapter.script("gpt-4o-mini", fail(ErrorClass.AUTH, 401))
    assert await server.ask(org_id) == "openai:main/gpt-4o-mini=failed:auth"
    assert await server.ask(org_id) == "openai:main/gpt-4o-mini=skipped:disabled:auth"
    assert [c.key for c in server.adapter.calls] == [KEY_1]


async def test_a_key_replaced_by_another_process_clears_the_cooldown_on_reload(
    server: Server, org_id: str, other_process: OtherProcess
) -> None:
    await disabled_by_a_bad_key(server, org_id)
    async with other_process.db.session() as s:
        await other_process.connections.replace_key(s, org_id, "openai:main", Secret(KEY_2))
    assert await server.ask(org_id) == "openai:main/gpt-4o-mini=skipped:disabled:auth"  # not polled yet
    await server.registry.poll_once()
    assert await server.ask(org_id) == "openai:main/gpt-4o-mini=served"
    assert [c.key for c in server.adapter.calls] == [KEY_1, KEY_2]


async def test_a_reload_without_a_key_change_keeps_the_cooldown(
    server: Server, org_id: str, other_process: OtherProcess
) -> None:
    await disabled_by_a_bad_key(server, org_id)
    before = await server.registry.get(org_id)
    async with other_process.db.session() as s:
        await other_process.connections.update(s, org_id, "openai:main", models=["gpt-4o-mini"])
        await Agents().set_org_routing(s, org_id, chains={"chat": ["openai/gpt-4o-mini"]})
    await server.registry.poll_once()
    assert await server.registry.get(org_id) is not before  # it did reload
    assert await server.ask(org_id) == "openai:main/gpt-4o-mini=skipped:disabled:auth"
    assert [c.key for c in server.adapter.calls] == [KEY_1]


async def test_a_profile_deleted_and_created_again_starts_fresh(
    server: Server, org_id: str, other_process: OtherProcess
) -> None:
    await disabled_by_a_bad_key(server, org_id)
    async with other_process.db.session() as s:
        await other_process.connections.delete(s, org_id, "openai:main")
        await other_process.connections.create(s, org_id, provider="openai", name="main", key=Secret(KEY_2))
    await server.registry.poll_once()
    assert await server.ask(org_id) == "openai:main/gpt-4o-mini=served"
    assert [c.key for c in server.adapter.calls] == [KEY_1, KEY_2]


class UnreachableStore(InProcessCooldownStore):
    async def clear(self, org_id: str, profile_id: str) -> None:
        raise ConnectionError("store down")


async def test_a_store_that_cannot_clear_does_not_fail_the_reload(
    db: Database, vault: Vault, org_id: str
) -> None:
    registry = Registry(db.sessions, vault, cooldowns=UnreachableStore())
    try:
        conn = (await registry.get(org_id)).routing.all_connections()[0]
        async with db.session() as s:
            await Connections(vault, GuardPolicy()).replace_key(s, org_id, "openai:main", Secret(KEY_2))
        registry.changed(org_id)
        await registry.get(org_id)
        assert registry.credential(conn).reveal("test") == KEY_2
    finally:
        await registry.aclose()
