"""The two hot /v1 POST endpoints run through their own short chain; every other request through
FastAPI's middleware stack (server.hot_path)."""

from __future__ import annotations

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from server.app import create_app
from server.hot_path import HOT_ENDPOINTS, PatchbayApp
from server.settings import Settings
from tests.server.v1.conftest import Patchbay

MESSAGES = {
    "model": "openai/gpt-4o-mini",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}


class Recorder:
    """An ASGI app that answers 204 and remembers the paths it saw."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.seen.append((scope["method"], scope["path"]))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def app(settings: Settings) -> PatchbayApp:
    built = create_app(settings)
    assert isinstance(built, PatchbayApp)
    return built


async def send_each(app: PatchbayApp, requests: list[tuple[str, str]]) -> tuple[Recorder, Recorder]:
    hot, stack = Recorder(), Recorder()
    app.hot_chain = hot
    app.middleware_stack = stack
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://patchbay.test") as client:
        for method, path in requests:
            assert (await client.request(method, path)).status_code == 204
    return hot, stack


async def test_only_a_post_to_a_hot_endpoint_takes_the_short_chain(app: PatchbayApp) -> None:
    hot_requests = [("POST", path) for path in HOT_ENDPOINTS]
    others = [
        ("GET", "/v1/chat/completions"),
        ("POST", "/v1/chat/completions/"),
        ("POST", "/v1/audio/speech"),
        ("GET", "/v1/models"),
        ("POST", "/admin/v1/orgs"),
    ]
    hot, stack = await send_each(app, hot_requests + others)
    assert hot.seen == hot_requests
    assert stack.seen == others


async def test_both_ways_keep_the_request_id(patchbay: Patchbay) -> None:
    """The body cap on the short chain: tests/server/test_body_limit.py; its access line and the
    500 of a bug: tests/server/v1/test_errors.py."""
    async with patchbay.client() as client:
        served = await client.post("/v1/messages", json=MESSAGES, headers={"x-request-id": "req-hot-2"})
        wrong_method = await client.get("/v1/chat/completions", headers={"x-request-id": "req-hot-3"})
    assert (served.status_code, served.headers["x-request-id"]) == (200, "req-hot-2")
    assert (wrong_method.status_code, wrong_method.headers["x-request-id"]) == (405, "req-hot-3")
