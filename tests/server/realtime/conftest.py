"""A real Patchbay on a loopback port with `/v1/realtime`, an emulated LLM upstream behind the
real router, and voice engines chosen per test (fakes by default, the internal ones for the
acceptance test).

The app runs under uvicorn (lifespan on) as a task on the test's event loop; the OpenAI
emulator runs on its own thread. The org's chat chain is `openai/gpt-4o-mini`, which the
`voice_turn` intent falls back to.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
import uvicorn
import websockets

from providers.speech.base import STTEngine, TTSEngine
from providers.vault.secret import Secret
from server import accounts
from server.accounts import Principal
from server.app import create_app
from server.db import Database
from server.realtime.runtime import EnginesFactory, VoiceRuntime
from server.serve import WEBSOCKET_PROTOCOL
from server.services import Overrides, Services
from server.settings import Settings
from tests.emulators.harness import ServedApp
from tests.emulators.openai import OpenAIEmulator
from tests.serving import loopback_config, uvicorn_in_loop
from tests.voice.fakes import FakeSTT, FakeTTS

OPENAI_KEY = "sk-proj-CANARY-realtime-0123456789abcdef"
TEST_MASTER_KEY = "v1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="


@pytest.fixture(scope="module")
def llm_served() -> Iterator[tuple[OpenAIEmulator, str]]:
    emulator = OpenAIEmulator("openai", api_key=OPENAI_KEY, models=("gpt-4o-mini",))
    with ServedApp(emulator) as served:
        yield emulator, served.url + "/v1"


@pytest.fixture
def llm(llm_served: tuple[OpenAIEmulator, str]) -> OpenAIEmulator:
    llm_served[0].reset()
    return llm_served[0]


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=db_url,
        admin_token="admin-test-token-0123456789abcdefghij",
        allow_private_base_urls=True,
        allow_plain_http_base_urls=True,
        master_key=TEST_MASTER_KEY,
        api_key_rate_limit="off",
        voice_max_frame_bytes=64 * 1024,
    )


def fake_engines(*, text: str = "can you book a table for two", tts: FakeTTS | None = None) -> EnginesFactory:
    speaker = tts or FakeTTS(sample_rate=24_000, chunks=4, chunk_ms=40)

    def build(principal: Principal) -> tuple[STTEngine, TTSEngine]:
        return FakeSTT(text=text), speaker

    return build


@pytest.fixture
def engines() -> EnginesFactory | None:
    """Override in a test module; None means the internal engines from the settings."""
    return fake_engines()


@pytest.fixture
def wall_clock() -> Callable[[], datetime] | None:
    """Override in a test module to set the clock API keys expire by; None: the real one."""
    return None


@dataclass
class Patchbay:
    url: str
    ws_url: str
    services: Services
    key: str
    org_id: str
    server: uvicorn.Server

    @property
    def runtime(self) -> VoiceRuntime:
        return self.services.voice


async def _seed(svc: Services, llm_url: str) -> tuple[str, str]:
    async with svc.db.session() as s:
        org = await accounts.create_org(s, "Acme Voice")
        await svc.connections().create(
            s, org.id, provider="openai", name="main", base_url=llm_url, key=Secret(OPENAI_KEY)
        )
        await svc.agents().set_org_routing(s, org.id, chains={"chat": ["openai/gpt-4o-mini"]})
        key = await accounts.create_api_key(s, org.id, name="voice")
    return org.id, key.key


@pytest.fixture
def ws_protocol() -> Any:
    """The WebSocket protocol uvicorn serves with: `patchbay serve`'s unless a module overrides it."""
    return WEBSOCKET_PROTOCOL


@pytest.fixture
async def patchbay(
    ws_protocol: Any,
    settings: Settings,
    db: Database,
    llm_served: tuple[OpenAIEmulator, str],
    engines: EnginesFactory | None,
    wall_clock: Callable[[], datetime] | None,
) -> AsyncIterator[Patchbay]:
    services = Services.build(settings, db, Overrides(voice_engines=engines, now=wall_clock))
    org_id, key = await _seed(services, llm_served[1])
    app = create_app(settings, services=services)
    async with uvicorn_in_loop(loopback_config(app, ws=ws_protocol)) as server:
        port = server.config.port
        yield Patchbay(
            f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/v1/realtime", services, key, org_id, server
        )


class Client:
    """A thin realtime client over `websockets`: JSON events in and out."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []

    async def send(self, type_: str, **payload: Any) -> None:
        await self.ws.send(orjson.dumps({"type": type_, **payload}).decode())

    async def send_raw(self, text: str | bytes) -> None:
        await self.ws.send(text)

    async def recv(self, within: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(within):
            event: dict[str, Any] = orjson.loads(await self.ws.recv())
        self.received.append(event)
        return event

    async def until(self, type_: str, within: float = 10.0) -> list[dict[str, Any]]:
        """Events up to and including the first of `type_`."""
        seen: list[dict[str, Any]] = []
        while True:
            event = await self.recv(within)
            seen.append(event)
            if event["type"] == type_:
                return seen


@pytest.fixture
async def connect(patchbay: Patchbay) -> AsyncIterator[Any]:
    opened: list[websockets.ClientConnection] = []

    async def open_client(
        *, key: str | None = None, query: str = "model=default", headers: dict[str, str] | None = None
    ) -> Client:
        all_headers = {"authorization": f"Bearer {key or patchbay.key}"} if key != "" else {}
        all_headers.update(headers or {})
        ws = await websockets.connect(
            f"{patchbay.ws_url}?{query}", additional_headers=all_headers, max_size=None
        )
        opened.append(ws)
        return Client(ws)

    yield open_client
    for ws in opened:
        await ws.close()


@pytest.fixture
async def sdk(patchbay: Patchbay) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official openai client, its realtime WebSocket pointed at this Patchbay."""
    ws_base = patchbay.url.replace("http://", "ws://") + "/v1"
    async with openai.AsyncOpenAI(
        api_key=patchbay.key, base_url=patchbay.url + "/v1", websocket_base_url=ws_base, max_retries=0
    ) as client:
        yield client


def watch_close(monkeypatch: pytest.MonkeyPatch, module: Any) -> asyncio.Future[BaseException | None]:
    """The outcome of the next `close_socket` that `module` (a voice endpoint) calls: None, or
    what it raised."""
    closing: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
    close = module.close_socket

    async def watched(websocket: Any, code: int, reason: str) -> None:
        try:
            await close(websocket, code, reason)
        except BaseException as exc:
            closing.set_result(exc)
            raise
        closing.set_result(None)

    monkeypatch.setattr(module, "close_socket", watched)
    return closing
