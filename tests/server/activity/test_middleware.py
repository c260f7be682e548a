"""The middleware opens an entry for each logged /v1 request, unless the retention turns the log off."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from server import accounts
from server.db import Database
from server.services import Services
from server.settings import Settings
from tests.server.conftest import ADMIN_TOKEN


@pytest.fixture(params=[30, 0], ids=["kept", "off"])
def settings(request: pytest.FixtureRequest, tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=db_url,
        admin_token=ADMIN_TOKEN,
        request_log_retention_days=request.param,
    )


async def test_retention_zero_logs_nothing(
    app: FastAPI, client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    async with db.session() as s:
        org = await accounts.create_org(s, "Acme")
        key = (await accounts.create_api_key(s, org.id, name="ci")).key
    headers = {"authorization": f"Bearer {key}"}
    # The org has no connections: the model is not found, a refusal that is logged all the same.
    r = await client.post(
        "/v1/chat/completions",
        json={"model": "x/y", "messages": [{"role": "user", "content": "hi"}]},
        headers=headers,
    )
    assert r.status_code == 404, r.text
    await client.get("/v1/models", headers=headers)  # not a logged surface
    log = app.state.services.gateway.request_log
    assert isinstance(app.state.services, Services)
    kept = settings.request_log_retention_days > 0
    assert (log.enabled, log.pending) == (kept, 1 if kept else 0)
