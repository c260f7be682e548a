"""App-level fixtures: a real app over a real database, driven through httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from server.app import create_app
from server.db import Database
from server.services import Services
from server.settings import Settings

ADMIN_TOKEN = "admin-test-token-0123456789abcdefghij"


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(data_dir=tmp_path, database_url=db_url, admin_token=ADMIN_TOKEN)


@pytest.fixture
async def app(settings: Settings, db: Database) -> AsyncIterator[FastAPI]:
    application = create_app(settings, services=Services.build(settings, db))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://patchbay.test") as c:
        yield c


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"authorization": f"Bearer {ADMIN_TOKEN}"}


from tests.replicas import (  # noqa: E402, F401 (fixtures for the multi-replica tests)
    private_redis_server,
    replica_database,
    replica_db,
)
