"""Schemathesis against the OpenAPI schema of /v1 and /admin/v1: no generated request gets a 5xx.

Every operation in the app's own schema gets a few generated requests (bounded, so the file
stays fast), sent in process through schemathesis' ASGI client (no socket). The app runs on a
private SQLite database with one seeded org: `{org}` path parameters name that org, so handlers
are reached past the lookup; admin paths carry the operator token and /v1 paths an API key of
the org. DNS answers a private address, which the base URL guard refuses, so a generated
connection never reaches the network, and the offline engines are fakes. A 5xx is a bug: a
malformed request must get a typed 4xx that says what to fix.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.python.asgi import ASGIClient, shutdown_lifespans

from routing.speech import BuiltIn
from server import accounts
from server.app import create_app
from server.db import Database
from server.services import Overrides, Services
from server.settings import Settings
from tests.voice.fakes import FakeSTT, FakeTTS

ADMIN_TOKEN = "admin-fuzz-token-0123456789abcdefghij"
MASTER_KEY = "v1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="


def _settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=f"sqlite+aiosqlite:///{data_dir / 'fuzz.db'}",
        admin_token=ADMIN_TOKEN,
        master_key=MASTER_KEY,
        api_docs=True,
    )


def _document() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        return create_app(_settings(Path(scratch))).openapi()


schema = schemathesis.openapi.from_dict(_document())


async def _private_dns(host: str, port: int) -> list[str]:
    return ["10.255.255.1"]


async def _seed(settings: Settings) -> tuple[str, str]:
    db = Database(settings.database_url)
    try:
        await db.upgrade()
        async with db.session() as s:
            org = await accounts.create_org(s, "Fuzz")
            key = await accounts.create_api_key(s, org.id, name="fuzz")
        return org.id, key.key
    finally:
        await db.dispose()


class Fuzzed:
    def __init__(self, app: FastAPI, org_id: str, api_key: str) -> None:
        self.client = ASGIClient(app)
        self.org_id = org_id
        self.api_key = api_key

    def headers(self, path: str) -> dict[str, str]:
        token = self.api_key if path.startswith("/v1/") else ADMIN_TOKEN
        return {"authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    settings = _settings(tmp_path_factory.mktemp("fuzz"))
    org_id, api_key = asyncio.run(_seed(settings))
    overrides = Overrides(
        resolve=_private_dns,
        internal_engines=BuiltIn(
            stt=FakeSTT("internal:whisper", text="hello"), tts=FakeTTS("internal:espeak")
        ),
    )
    services = Services.build(settings, Database(settings.database_url), overrides)
    app = create_app(settings, services=services)
    fuzzed = Fuzzed(app, org_id, api_key)
    with fuzzed.client:  # runs the app's lifespan on schemathesis' event loop thread
        try:
            yield fuzzed
        finally:
            shutdown_lifespans()


@schema.parametrize()
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_no_server_errors(case: schemathesis.Case, fuzzed: Fuzzed) -> None:
    if "org" in (case.path_parameters or {}):
        case.path_parameters = {**(case.path_parameters or {}), "org": fuzzed.org_id}
    response = case.call(
        base_url="http://patchbay.test", session=fuzzed.client, headers=fuzzed.headers(case.path)
    )
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}\n"
        f"reproduce: {case.as_curl_command()}"
    )
