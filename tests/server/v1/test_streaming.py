"""Stream behaviour through Patchbay: fallback before the first token, errors after it, disconnects."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import openai
import pytest

from tests.emulators.openai import Scenario
from tests.emulators.openai_errors import rate_limited
from tests.server.v1.conftest import Patchbay, Upstreams

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def client(patchbay: Patchbay) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=patchbay.url + "/v1", api_key=patchbay.key, max_retries=0) as c:
        yield c


async def _collect(client: openai.AsyncOpenAI) -> tuple[str, dict[str, str]]:
    async with client.chat.completions.with_streaming_response.create(
        model="default", messages=MESSAGES, stream=True
    ) as response:
        headers = dict(response.headers)
        text = ""
        async for chunk in await response.parse():
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
    return text, headers


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(rate_limited(30), id="429-before-headers"),
        pytest.param(Scenario(error_after=1), id="error-event-before-first-token"),
    ],
)
async def test_failure_before_first_token_is_served_by_fallback_invisibly(
    client: openai.AsyncOpenAI, upstreams: Upstreams, failure: Scenario
) -> None:
    upstreams.openai.always(failure)
    text, headers = await _collect(client)
    assert text == Scenario().text
    assert headers["x-patchbay-provider"] == "mistral:default"
    route = headers["x-patchbay-route"]
    assert route.startswith("openai:main/gpt-4o-mini=failed:")
    assert route.endswith("mistral:default/mistral-small-latest=served")
    assert len(upstreams.mistral.chat_requests) == 1


async def test_failure_after_first_token_ends_with_an_openai_error_chunk(
    client: openai.AsyncOpenAI, upstreams: Upstreams
) -> None:
    upstreams.openai.enqueue(Scenario(error_after=4))
    received = ""
    stream = await client.chat.completions.create(model="default", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError) as info:
        async for chunk in stream:
            if chunk.choices:
                received += chunk.choices[0].delta.content or ""
    assert received and Scenario().text.startswith(received) and received != Scenario().text
    assert "after output started" in info.value.message
    assert upstreams.mistral.chat_requests == []  # no fallback once output reached the caller


async def test_error_chunk_shape_after_first_token(upstreams: Upstreams, patchbay: Patchbay) -> None:
    async with patchbay.client() as raw:
        upstreams.openai.enqueue(Scenario(error_after=4))
        response = await raw.post(
            "/v1/chat/completions", json={"model": "default", "messages": MESSAGES, "stream": True}
        )
    frames = [f for f in response.text.split("\n\n") if f]
    error = json.loads(frames[-2].removeprefix("data: "))
    assert set(error["error"]) == {"message", "type", "param", "code", "request_id"}
    assert error["error"]["request_id"] == response.headers["x-request-id"]
    assert error["error"]["code"] == "upstream_server_error"
    trailer = json.loads(frames[-1].removeprefix(": patchbay "))
    assert trailer["route"] == "openai:main/gpt-4o-mini=failed:server_error"
    assert trailer["served"] is None
    assert "data: [DONE]" not in response.text


async def test_client_disconnect_closes_the_upstream_stream(patchbay: Patchbay, upstreams: Upstreams) -> None:
    upstreams.openai.enqueue(Scenario(chunk_delay=0.5))
    async with patchbay.client() as raw:
        request = raw.build_request(
            "POST", "/v1/chat/completions", json={"model": "default", "messages": MESSAGES, "stream": True}
        )
        response = await raw.send(request, stream=True)
        lines = response.aiter_lines()
        first = await anext(lines)
        assert first.startswith("data: ")
        await response.aclose()
    seen = await asyncio.to_thread(upstreams.openai.wait_disconnect, 5.0)
    assert seen is not None, "the upstream never saw the stream closed"


async def test_stream_usage_is_recorded_with_the_served_billing_source(
    client: openai.AsyncOpenAI, upstreams: Upstreams, patchbay: Patchbay
) -> None:
    from sqlalchemy import select

    from billing.tables import UsageRecord

    upstreams.openai.enqueue(rate_limited(30))
    await _collect(client)
    await patchbay.services.usage.flush()
    async with patchbay.services.db.session() as s:
        rows = list(await s.scalars(select(UsageRecord)))
    assert len(rows) == 1
    row = rows[0]
    assert (row.segment, row.profile_id, row.billing_source, row.status) == (
        "llm",
        "mistral:default",
        "byok",
        "ok",
    )
    assert row.model == "mistral-small-latest" and row.output_tokens > 0 and row.org_id == patchbay.org_id
