"""The composition root: one of each long-lived object, shared by every surface, and overrides
that reach the parts they name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from providers.h1 import H1Client
from providers.speech.base import STTEngine, TTSEngine
from routing.errors import BaseUrlRefusedError
from routing.speech import BuiltIn
from server import accounts
from server.accounts import Principal
from server.admin.token import token_path
from server.db import Database
from server.services import Overrides, Services
from server.settings import Settings
from tests.voice.fakes import FakeSTT, FakeTTS

PRINCIPAL = Principal(org_id="org_x", key_id="key_x", agent_id=None)


async def test_every_surface_shares_one_gateway(tmp_path: Path, db: Database) -> None:
    services = Services.build(Settings(data_dir=tmp_path, database_url="sqlite+aiosqlite://"), db)
    try:
        assert services.voice.gateway is services.gateway
        tools = services.verify_tools()
        assert tools.clients is services.gateway.upstream
        assert tools.catalog is services.gateway.catalog
        # An admin change drops the registry's snapshot of that org (and only through the root).
        assert services.config_listeners == [services.gateway.registry.changed]
    finally:
        await services.aclose()


async def test_overrides_reach_the_voice_runtime_and_the_verify_tools(tmp_path: Path, db: Database) -> None:
    stt, tts = FakeSTT(text="hi"), FakeTTS()

    def engines(principal: Principal) -> tuple[STTEngine, TTSEngine]:
        return stt, tts

    async def dns(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    internal = BuiltIn(stt=FakeSTT(), tts=FakeTTS())
    overrides = Overrides(resolve=dns, voice_engines=engines, internal_engines=internal)
    services = Services.build(Settings(data_dir=tmp_path, database_url="sqlite+aiosqlite://"), db, overrides)
    try:
        assert await services.voice.engines_for(PRINCIPAL) == (stt, tts)
        assert services.voice.internal_engines() is internal
        assert services.verify_tools().resolve is dns
    finally:
        await services.aclose()


async def test_the_cli_root_leaves_the_admin_token_file_alone(tmp_path: Path, db: Database) -> None:
    settings = Settings(data_dir=tmp_path, database_url="sqlite+aiosqlite://")
    services = Services.build(settings, db, admin_api=False)
    await services.aclose()
    assert services.admin_token is None and not token_path(settings).exists()
    served = Services.build(settings, db)
    await served.aclose()
    assert served.admin_token is not None and token_path(settings).exists()


async def test_the_ledger_takes_the_hold_ttl_and_its_sweeper_runs_while_serving(
    tmp_path: Path, db: Database
) -> None:
    settings = Settings(data_dir=tmp_path, database_url="sqlite+aiosqlite://", billing_hold_ttl_seconds=120)
    services = Services.build(settings, db)
    try:
        assert services.ledger.hold_ttl.total_seconds() == 120
        assert not services.sweeper.running
        await services.start()
        assert services.sweeper.running
    finally:
        await services.aclose()
    assert not services.sweeper.running


async def test_a_keys_first_use_brings_its_org_into_the_registry(tmp_path: Path, db: Database) -> None:
    services = Services.build(Settings(data_dir=tmp_path, database_url="sqlite+aiosqlite://"), db)
    try:
        async with db.session() as s:
            org = await accounts.create_org(s, "Acme")
            issued = await accounts.create_api_key(s, org.id, name="test")
        principal = await services.gateway.api_keys.check(issued.key)
        assert isinstance(principal, Principal) and principal.org_id == org.id
        # Read with the key, on its session: the request's `get` finds it held.
        assert services.gateway.registry.cached(org.id) is not None
    finally:
        await services.aclose()


@pytest.mark.parametrize("client_setting", ["h1", "aiohttp"])
async def test_upstream_connections_bound_each_origins_calls_and_nothing_else_does(
    tmp_path: Path, db: Database, client_setting: Any
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url="sqlite+aiosqlite://",
        upstream_connections=3,
        upstream_client=client_setting,
    )
    services = Services.build(settings, db)
    try:
        upstream = services.gateway.upstream
        client, slots = upstream.origin_for("https://api.openai.com/v1/chat/completions")
        assert slots.size == 3 and slots.origin == "https://api.openai.com:443"
        assert upstream.resolve_checked is not None  # every new connection's addresses are checked
        if client_setting == "h1":
            # Patchbay's client has no bound of its own on open connections, only on idle ones.
            assert isinstance(client, H1Client)
            return
        # aiohttp's own pool does not bound them a second time: a finished stream whose last
        # bytes are read behind the caller (providers/tail.py) must not hold up the next call.
        assert isinstance(client, aiohttp.ClientSession) and client.connector is not None
        assert client.connector.limit == 0
    finally:
        await services.aclose()


async def test_speech_websockets_get_the_guards_checked_addresses(tmp_path: Path, db: Database) -> None:
    async def dns(host: str, port: int) -> list[str]:
        return ["93.184.216.34"] if host == "speech.example" else ["10.0.0.7"]

    settings = Settings(data_dir=tmp_path, database_url="sqlite+aiosqlite://")
    services = Services.build(settings, db, Overrides(resolve=dns))
    try:
        resolve = services.gateway.upstream.resolve_checked
        assert resolve is not None
        assert await resolve("speech.example", 443) == ["93.184.216.34"]
        with pytest.raises(BaseUrlRefusedError, match="private address 10.0.0.7"):
            await resolve("inside.example", 443)
    finally:
        await services.aclose()
