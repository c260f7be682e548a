"""The app factory: the API description is served only when asked for (docs/security.md)."""

from __future__ import annotations

import httpx

from server.app import create_app
from server.settings import Settings


async def get(settings: Settings, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://patchbay.test") as client:
        return await client.get(path)


async def test_docs_and_openapi_are_off_by_default(settings: Settings) -> None:
    assert not settings.api_docs
    for path in ("/docs", "/openapi.json"):
        assert (await get(settings, path)).status_code == 404, path


async def test_api_docs_true_serves_both(settings: Settings) -> None:
    on = settings.model_copy(update={"api_docs": True})
    assert (await get(on, "/docs")).status_code == 200
    assert "/admin/v1/orgs" in (await get(on, "/openapi.json")).json()["paths"]
