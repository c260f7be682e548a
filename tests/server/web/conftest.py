"""A real Patchbay (uvicorn on a loopback port) and a real headless Chromium driving its UI.

The browser is the Debian `chromium` (`/usr/bin/chromium`, or PATCHBAY_TEST_CHROMIUM) driven
by the `playwright` package; `playwright install` is never needed. Without Chromium or
Playwright the tests skip, and under CI (`CI=true`) they fail, as tests/conftest.py treats
PostgreSQL and Redis.

The UI's behaviour does not depend on the storage backend (the admin API tests run on both),
so these run on SQLite only. The app runs as a task on the test's event loop, like
tests/server/v1/conftest.py; the emulator runs on its own thread.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from routing.speech import BuiltIn
from server.admin.token import load_admin_token
from server.app import create_app
from server.db import Database
from server.realtime.runtime import build_internal_engines
from server.serve import WEBSOCKET_PROTOCOL
from server.services import Overrides, Services
from server.settings import Settings
from server.ws_drain import DrainingProtocol, websocket_protocol
from tests import databases
from tests.conftest import IN_CI
from tests.emulators.harness import ServedApp
from tests.emulators.openai import OpenAIEmulator
from tests.offline_voice import whisper_model
from tests.serving import loopback_config, uvicorn_in_loop

CHROMIUM = os.environ.get("PATCHBAY_TEST_CHROMIUM", "/usr/bin/chromium")
TEST_MASTER_KEY = "v1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="
TIMEOUT_MS = 10_000
SQLITE = "sqlite+aiosqlite:///"


def _require(condition: bool, message: str) -> None:
    if condition:
        return
    if IN_CI:
        pytest.fail(message + " (CI=true: the browser tests must run)")
    pytest.skip(message)


@dataclass
class Live:
    url: str
    token: str
    services: Services
    settings: Settings
    server: uvicorn.Server

    def drain_sessions(self) -> int:
        """Start draining every open realtime session, as a worker does at SIGTERM or a reload
        (the server goes on accepting); how many there were."""
        draining = [c for c in self.server.server_state.connections if isinstance(c, DrainingProtocol)]
        for connection in draining:
            connection.shutdown()
        return len(draining)

    def admin(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url + "/admin/v1", headers={"authorization": f"Bearer {self.token}"}, timeout=10
        )


def _unmade_sqlite(url: str) -> Path | None:
    path = Path(url.removeprefix(SQLITE))
    return path if url.startswith(SQLITE) and not path.exists() else None


@asynccontextmanager
async def serve(
    settings: Settings, *, drain: bool = False, overrides: Overrides | None = None
) -> AsyncIterator[Live]:
    """The app on loopback; with `drain`, on `patchbay serve`'s draining WebSocket protocol
    (`server.ws_drain`), whose sockets a test may start draining (`Live.drain_sessions`).
    A SQLite database not there yet starts as a copy of the migrated template."""
    url = settings.resolved_database_url
    if (unmade := _unmade_sqlite(url)) is not None:
        await databases.sqlite_migrated(unmade)
    database = Database(url)
    await database.upgrade()
    services = Services.build(settings, database, overrides)
    app = create_app(settings, services=services)
    token = services.admin_token.get_secret_value() if services.admin_token else ""
    try:
        ws = websocket_protocol(settings.voice_drain_seconds) if drain else WEBSOCKET_PROTOCOL
        async with uvicorn_in_loop(loopback_config(app, ws=ws)) as server:
            yield Live(f"http://127.0.0.1:{server.config.port}", token, services, settings, server)
    finally:
        await database.dispose()


def ui_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """No PATCHBAY_ADMIN_TOKEN: the server generates DATA_DIR/admin.token, as on the embedded default."""
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'ui.db'}",
        "allow_private_base_urls": True,
        "allow_plain_http_base_urls": True,
        "master_key": TEST_MASTER_KEY,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    settings = ui_settings(tmp_path)
    async with serve(settings) as running:
        token = load_admin_token(settings, create=False)
        assert token is not None and running.token == token.value.get_secret_value()
        yield running


@pytest.fixture
def serve_with() -> Callable[[Settings], AbstractAsyncContextManager[Live]]:
    return serve


@pytest.fixture(scope="module")
def emulator() -> Iterator[tuple[OpenAIEmulator, str]]:
    emu = OpenAIEmulator("openai", models=("gpt-4o-mini",))
    with ServedApp(emu) as served:
        yield emu, served.url + "/v1"


@pytest.fixture(scope="session")
def whisper_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Whisper base model for the internal STT (the voice tests; skipped without it),
    assembled once per test process (it copies and hashes about 145 MB)."""
    return whisper_model(tmp_path_factory.mktemp("models") / "whisper-base")


@pytest.fixture(scope="session")
def internal_engines(whisper_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> BuiltIn:
    """The internal engines (Whisper, espeak-ng) as the server builds them, one set per test
    process: each live server of the voice tests gets them (`Overrides.internal_engines`), so the
    model loads once (4 s of both cores), not once a server. The engine serves each test's loop."""
    settings = ui_settings(tmp_path_factory.mktemp("engines"), voice_whisper_model_dir=whisper_dir)
    return build_internal_engines(settings)


@dataclass
class Seen:
    """What the page received and reported: every response body and header, console errors."""

    bodies: list[asyncio.Task[bytes]] = field(default_factory=list)
    headers: list[asyncio.Task[dict[str, str]]] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def texts(self) -> list[str]:
        bodies = await asyncio.gather(*self.bodies, return_exceptions=True)
        headers = await asyncio.gather(*self.headers, return_exceptions=True)
        out = [b.decode("utf-8", "replace") for b in bodies if isinstance(b, bytes)]
        out += [repr(h) for h in headers if isinstance(h, dict)]
        return out


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _require(False, "the playwright package is not installed (pip install -e '.[test]')")
    _require(
        bool(shutil.which(CHROMIUM)), f"chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    )
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def page_and_seen(browser: Any) -> AsyncIterator[tuple[Any, Seen]]:
    # A fixed locale: the pages format numbers and dates the browser's way (1,234 in en-US).
    context = await browser.new_context(locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    seen = Seen()

    def on_response(response: Any) -> None:
        seen.urls.append(response.url)
        seen.bodies.append(asyncio.ensure_future(response.body()))
        seen.headers.append(asyncio.ensure_future(response.all_headers()))

    def on_console(message: Any) -> None:
        # A refused request (the wrong-token check) is logged by Chromium as a console error.
        if message.type == "error" and "Failed to load resource" not in message.text:
            seen.errors.append(message.text)

    page.on("response", on_response)
    page.on("console", on_console)
    page.on("pageerror", lambda exc: seen.errors.append(f"page error: {exc}"))
    try:
        yield page, seen
    finally:
        await asyncio.gather(*seen.bodies, *seen.headers, return_exceptions=True)
        await context.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every browser test is slow (a server and Chromium each): it is started first
    (tests/conftest.py)."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.slow)
