"""A key's scope on realtime: the session's model checked against the key's list (the route's
choice counts as `default`), on the socket, on `client_secrets` and through a minted token; an
expired key refused saying so, by an injected clock. A refusal the client can read is one
`error` event in the realtime wire's format, then a close with 1008."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import websockets

from server import accounts
from tests.emulators.openai import OpenAIEmulator, Scenario
from tests.server.realtime.conftest import Client, Patchbay
from tests.server.realtime.sdk import validated

REPLY = "Table for two at seven."


class WallClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


@pytest.fixture
def wall_clock(clock: WallClock) -> Callable[[], datetime]:
    return clock


async def _key(patchbay: Patchbay, clock: WallClock, name: str, **scope: Any) -> str:
    async with patchbay.services.db.session() as s:
        issued = await accounts.create_api_key(s, patchbay.org_id, name=name, now=clock.now, **scope)
    return issued.key


async def _refusal(client: Client) -> dict[str, Any]:
    """The one error event of a refused connection, after which the server closes with 1008."""
    event = await client.recv()
    assert event["type"] == "error"
    validated(event)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await client.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    error: dict[str, Any] = event["error"]
    return error


async def _turn(client: Client) -> str:
    await client.until("session.created")
    await client.send(
        "conversation.item.create",
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Book a table"}]},
    )
    await client.send("response.create")
    events = await client.until("response.done")
    return "".join(e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta")


async def test_a_session_on_a_model_off_the_list_is_refused(
    connect: Any, patchbay: Patchbay, clock: WallClock, llm: OpenAIEmulator
) -> None:
    key = await _key(patchbay, clock, "mini", models=["openai/gpt-4o-mini"])
    llm.enqueue(Scenario(text=REPLY))
    allowed: Client = await connect(key=key, query="model=openai/gpt-4o-mini")
    assert await _turn(allowed) == REPLY
    for query, asked in (
        ("model=default", "default"),
        ("model=gpt-realtime", "default"),  # an OpenAI realtime name: the route chooses
        ("model=mistral/mistral-small-latest", "mistral/mistral-small-latest"),
    ):
        refused = await _refusal(await connect(key=key, query=query))
        assert refused == {
            "type": "permission_error",
            "code": "model_not_allowed",
            "message": f"this API key may not use model {asked!r}; it may use: openai/gpt-4o-mini",
            "param": "model",
            "event_id": None,
        }
    assert len(llm.chat_requests) == 1
    assert patchbay.runtime.sessions.total == 1  # refused sockets never took a session slot


async def test_default_on_the_list_lets_the_route_choose(
    connect: Any, patchbay: Patchbay, clock: WallClock, llm: OpenAIEmulator
) -> None:
    key = await _key(patchbay, clock, "route", models=["default"])
    llm.enqueue(Scenario(text=REPLY))
    assert await _turn(await connect(key=key, query="model=gpt-realtime")) == REPLY
    refused = await _refusal(await connect(key=key, query="model=openai/gpt-4o-mini"))
    assert refused["code"] == "model_not_allowed"


async def test_client_secrets_and_tokens_are_held_to_the_list(
    connect: Any, patchbay: Patchbay, clock: WallClock
) -> None:
    key = await _key(patchbay, clock, "mini", models=["openai/gpt-4o-mini"])
    async with httpx.AsyncClient(base_url=patchbay.url, headers={"authorization": f"Bearer {key}"}) as http:
        refused = await http.post("/v1/realtime/client_secrets", json={"session": {"model": "default"}})
        minted = await http.post(
            "/v1/realtime/client_secrets",
            json={"session": {"type": "realtime", "model": "openai/gpt-4o-mini"}},
        )
    assert refused.status_code == 403
    assert refused.json()["error"]["type"] == "permission_error"
    assert refused.json()["error"]["code"] == "model_not_allowed"
    assert minted.status_code == 200
    token = minted.json()["value"]
    client: Client = await connect(key="", query=f"token={token}")
    assert (await client.recv())["type"] == "session.created"
    # The query's model wins over the token's, and is checked the same way.
    overridden = await _refusal(await connect(key="", query=f"token={token}&model=default"))
    assert overridden["code"] == "model_not_allowed"


async def test_an_expired_key_is_refused_saying_so(
    connect: Any, patchbay: Patchbay, clock: WallClock
) -> None:
    key = await _key(patchbay, clock, "an hour", expires="1h")
    async with httpx.AsyncClient(base_url=patchbay.url, headers={"authorization": f"Bearer {key}"}) as http:
        minted = await http.post("/v1/realtime/client_secrets", json={})
        assert minted.status_code == 200
        clock.now += timedelta(hours=1)
        late = await http.post("/v1/realtime/client_secrets", json={})
    message = "this API key expired at 2026-06-01T10:00:00Z; create a new one"
    assert late.status_code == 401
    assert late.json()["error"] == {
        "type": "invalid_request_error",
        "code": "invalid_api_key",
        "message": message,
        "param": None,
        "request_id": late.headers["x-request-id"],
    }
    # The token is still within its own minute, but the key it names has expired.
    for how in ({"key": key}, {"key": "", "query": f"token={minted.json()['value']}"}):
        refused = await _refusal(await connect(**how))
        assert (refused["code"], refused["message"]) == ("invalid_api_key", message)
    with pytest.raises(websockets.InvalidStatus) as unknown:
        await connect(key="pb-not-a-real-key")
    assert unknown.value.response.status_code == 403


async def test_realtime_uses_count_as_the_keys_last_use(
    connect: Any, patchbay: Patchbay, clock: WallClock
) -> None:
    key = await _key(patchbay, clock, "voice key")
    keys = patchbay.services.gateway.api_keys
    await keys.last_used.aclose()  # no timed flush in the middle: this test flushes itself
    client: Client = await connect(key=key)
    assert (await client.recv())["type"] == "session.created"
    await keys.last_used.flush()
    async with patchbay.services.db.session() as s:
        used = {k.name: k.last_used_at for k in await accounts.list_api_keys(s, patchbay.org_id)}
    assert used["voice key"] == clock.now
