"""A key's scope on /v1 through the emulator-backed rig: its model list (403 in each wire's own
error format, /v1/models filtered), its expiry (401 saying so, by an injected clock) and its
last-used time (noted in memory, written by the flush, never a read or write per request)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anthropic
import httpx
import openai
import pytest

from server import accounts
from server.services import Overrides
from tests.emulators.openai import Scenario
from tests.server.v1.conftest import Patchbay, Upstreams

HI = [{"role": "user", "content": "hi"}]


class WallClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


@pytest.fixture
def overrides(clock: WallClock) -> Overrides:
    return Overrides(now=clock)


async def _key(patchbay: Patchbay, name: str, *, models: list[str] | None = None) -> str:
    async with patchbay.services.db.session() as s:
        issued = await accounts.create_api_key(s, patchbay.org_id, name=name, models=models)
    return issued.key


@pytest.fixture
async def mini_key(patchbay: Patchbay) -> str:
    """A key that may use `openai/gpt-4o-mini` only."""
    return await _key(patchbay, "mini only", models=["openai/gpt-4o-mini"])


async def test_chat_with_a_model_off_the_list_is_a_typed_403(
    patchbay: Patchbay, upstreams: Upstreams, mini_key: str
) -> None:
    async with openai.AsyncOpenAI(base_url=patchbay.url + "/v1", api_key=mini_key, max_retries=0) as sdk:
        reply = await sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=HI)  # type: ignore[arg-type]
        assert reply.choices[0].message.content == Scenario().text
        for model in ("mistral/mistral-small-latest", "default", "agent:support"):
            with pytest.raises(openai.PermissionDeniedError) as refused:
                await sdk.chat.completions.create(model=model, messages=HI)  # type: ignore[arg-type]
            assert refused.value.status_code == 403
            assert refused.value.body == {
                "message": f"this API key may not use model {model!r}; it may use: openai/gpt-4o-mini",
                "type": "permission_error",
                "param": "model",
                "code": "model_not_allowed",
                "request_id": refused.value.response.headers["x-request-id"],
            }
    assert len(upstreams.openai.chat_requests) == 1 and upstreams.mistral.chat_requests == []


async def test_streamed_chat_is_refused_before_any_stream(patchbay: Patchbay, mini_key: str) -> None:
    async with patchbay.client(mini_key) as http:
        body = {"model": "mistral/mistral-small-latest", "messages": HI, "stream": True}
        r = await http.post("/v1/chat/completions", json=body)
    assert r.status_code == 403 and r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] == "model_not_allowed"


async def test_messages_with_a_model_off_the_list_is_an_anthropic_permission_error(
    patchbay: Patchbay, upstreams: Upstreams, mini_key: str
) -> None:
    async with anthropic.AsyncAnthropic(base_url=patchbay.url, api_key=mini_key, max_retries=0) as sdk:
        message = await sdk.messages.create(model="openai/gpt-4o-mini", max_tokens=50, messages=HI)  # type: ignore[arg-type]
        assert message.content[0].type == "text" and message.content[0].text == Scenario().text
        with pytest.raises(anthropic.PermissionDeniedError) as refused:
            await sdk.messages.create(model="mistral/mistral-small-latest", max_tokens=50, messages=HI)  # type: ignore[arg-type]
    assert refused.value.body == {
        "type": "error",
        "error": {
            "type": "permission_error",
            "message": "this API key may not use model 'mistral/mistral-small-latest'; it may use: openai/gpt-4o-mini",
        },
        "request_id": refused.value.response.headers["x-request-id"],
    }
    assert upstreams.mistral.chat_requests == []


async def test_models_lists_only_what_the_key_may_use(patchbay: Patchbay, mini_key: str) -> None:
    async with patchbay.client() as http:
        everything = {m["id"] for m in (await http.get("/v1/models")).json()["data"]}
    assert {"openai/gpt-4o-mini", "mistral/mistral-small-latest", "agent:support"} <= everything
    async with patchbay.client(mini_key) as http:
        listed = [m["id"] for m in (await http.get("/v1/models")).json()["data"]]
        one = await http.get("/v1/models/openai/gpt-4o-mini")
        other = await http.get("/v1/models/mistral/mistral-small-latest")
    assert listed == ["openai/gpt-4o-mini"]
    assert one.status_code == 200 and other.status_code == 404

    alias_key = await _key(patchbay, "aliases", models=["mistral", "agent:support"])
    async with patchbay.client(alias_key) as http:
        listed = [m["id"] for m in (await http.get("/v1/models")).json()["data"]]
    # An alias and the ref it stands for are one model: both are listed, nothing else of mistral's.
    assert sorted(listed) == ["agent:support", "mistral", "mistral/mistral-large-latest"]


async def test_an_expired_key_is_refused_saying_so_on_every_surface(
    patchbay: Patchbay, clock: WallClock
) -> None:
    async with patchbay.services.db.session() as s:
        issued = await accounts.create_api_key(
            s, patchbay.org_id, name="an hour", expires="1h", now=clock.now
        )
    key = issued.key
    async with patchbay.client(key) as http:
        assert (await http.get("/v1/models")).status_code == 200
        clock.now += timedelta(hours=1)
        answers = [
            await http.post("/v1/chat/completions", json={"model": "default", "messages": HI}),
            await http.get("/v1/models"),
            await http.post("/v1/audio/speech", json={"input": "hello", "response_format": "pcm"}),
        ]
        anthropic_answer = await http.post(
            "/v1/messages", json={"model": "default", "max_tokens": 10, "messages": HI}
        )
    message = "this API key expired at 2026-06-01T10:00:00Z; create a new one"
    for r in answers:
        assert r.status_code == 401, r.text
        assert r.json()["error"] == {
            "message": message,
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
            "request_id": r.headers["x-request-id"],
        }
    assert anthropic_answer.status_code == 401
    assert anthropic_answer.json() == {
        "type": "error",
        "error": {"type": "authentication_error", "message": message},
        "request_id": anthropic_answer.headers["x-request-id"],
    }


async def test_requests_make_no_key_reads_or_writes_and_the_flush_records_the_last_use(
    patchbay: Patchbay, clock: WallClock
) -> None:
    key = await _key(patchbay, "busy")
    keys = patchbay.services.gateway.api_keys
    await keys.last_used.aclose()  # no timed flush in the middle: this test flushes itself
    async with patchbay.client(key) as http:
        assert (await http.get("/v1/models")).status_code == 200
        reads, writes = keys.lookups, keys.last_used.updates
        for _ in range(5):
            clock.now += timedelta(seconds=1)
            r = await http.post("/v1/chat/completions", json={"model": "openai/gpt-4o-mini", "messages": HI})
            assert r.status_code == 200
    assert (keys.lookups, keys.last_used.updates) == (reads, writes)
    await keys.last_used.flush()
    assert keys.last_used.updates == writes + 1  # this key's one UPDATE (the rig's own keys are unused)
    async with patchbay.services.db.session() as s:
        listed = {k.name: k.last_used_at for k in await accounts.list_api_keys(s, patchbay.org_id)}
    assert listed["busy"] == clock.now and listed["test"] is None


async def test_an_unrestricted_key_still_reaches_every_model(
    patchbay: Patchbay, upstreams: Upstreams
) -> None:
    async with patchbay.client() as http:
        for model in ("openai/gpt-4o-mini", "mistral/mistral-small-latest", "default"):
            r = await http.post("/v1/chat/completions", json={"model": model, "messages": HI})
            assert r.status_code == 200, r.text


async def test_a_key_is_refused_on_an_httpx_client_too(patchbay: Patchbay, mini_key: str) -> None:
    """The refusal needs no SDK: a plain client gets the same JSON and no routing was tried."""
    async with httpx.AsyncClient(
        base_url=patchbay.url, headers={"authorization": f"Bearer {mini_key}"}
    ) as http:
        r = await http.post("/v1/chat/completions", json={"model": "openai/gpt-4o", "messages": HI})
    assert r.status_code == 403 and "x-patchbay-route" not in r.headers
