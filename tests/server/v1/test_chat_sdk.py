"""The official openai SDK against Patchbay, against emulated upstreams, over loopback HTTP."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import openai
import pytest
from pydantic import BaseModel

from tests.emulators.openai import Scenario, json_reply, tool_calls
from tests.server.v1.conftest import Patchbay, Upstreams

MESSAGES = [{"role": "user", "content": "hi"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture
async def client(patchbay: Patchbay) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=patchbay.url + "/v1", api_key=patchbay.key, max_retries=0) as c:
        yield c


async def test_plain_chat_reports_who_served_in_headers(
    client: openai.AsyncOpenAI, upstreams: Upstreams
) -> None:
    raw = await client.chat.completions.with_raw_response.create(model="default", messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content == Scenario().text
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert raw.headers["x-patchbay-provider"] == "openai:main"
    assert raw.headers["x-patchbay-model"] == "openai/gpt-4o-mini"
    assert raw.headers["x-patchbay-billing-source"] == "byok"
    assert raw.headers["x-patchbay-route"] == "openai:main/gpt-4o-mini=served"
    assert raw.headers["x-patchbay-request-id"] == raw.headers["x-request-id"]
    sent = upstreams.openai.chat_requests[0].json
    assert sent["model"] == "gpt-4o-mini" and sent["messages"] == [{"role": "user", "content": "hi"}]


async def test_request_surface_reaches_the_upstream(client: openai.AsyncOpenAI, upstreams: Upstreams) -> None:
    await client.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=[
            {"role": "developer", "content": "be terse"},
            {"role": "user", "content": "hi"},
        ],
        max_completion_tokens=50,
        temperature=0.2,
        stop=["END"],
    )
    sent = upstreams.openai.chat_requests[0].json
    assert sent["messages"][0] == {"role": "system", "content": "be terse"}
    assert sent["temperature"] == 0.2
    assert sent["stop"] == ["END"]
    assert 50 in (sent.get("max_completion_tokens"), sent.get("max_tokens"))


async def test_streaming_with_usage(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    text, finish, usage = "", None, None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
    assert text == Scenario().text
    assert finish == "stop"
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0


async def test_stream_headers_name_the_served_provider(client: openai.AsyncOpenAI) -> None:
    async with client.chat.completions.with_streaming_response.create(
        model="default", messages=MESSAGES, stream=True
    ) as response:
        assert response.headers["x-patchbay-provider"] == "openai:main"
        assert response.headers["x-patchbay-billing-source"] == "byok"
        lines = [line async for line in response.iter_lines() if line]
    trailer = next(line for line in lines if line.startswith(": patchbay "))
    assert json.loads(trailer.removeprefix(": patchbay "))["served"] == "openai:main/gpt-4o-mini"
    assert lines[-1] == "data: [DONE]"


async def test_tool_calls_non_streamed(client: openai.AsyncOpenAI, upstreams: Upstreams) -> None:
    upstreams.openai.enqueue(
        tool_calls(("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"}))
    )
    completion = await client.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=MESSAGES,
        tools=[WEATHER_TOOL],
        tool_choice="auto",
        parallel_tool_calls=True,
    )
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    assert [json.loads(c.function.arguments)["city"] for c in message.tool_calls] == ["Paris", "Oslo"]
    sent = upstreams.openai.chat_requests[0].json
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tool_choice"] == "auto" and sent["parallel_tool_calls"] is True

    follow_up = [
        *MESSAGES,
        message.model_dump(exclude_none=True),
        *({"role": "tool", "tool_call_id": c.id, "content": "sunny"} for c in message.tool_calls),
    ]
    await client.chat.completions.create(model="openai/gpt-4o-mini", messages=follow_up, tools=[WEATHER_TOOL])
    replayed = upstreams.openai.chat_requests[1].json["messages"]
    assert [m["role"] for m in replayed] == ["user", "assistant", "tool", "tool"]
    assert replayed[2]["tool_call_id"] == message.tool_calls[0].id


async def test_tool_calls_streamed(client: openai.AsyncOpenAI, upstreams: Upstreams) -> None:
    upstreams.openai.enqueue(tool_calls(("get_weather", {"city": "Paris"})))
    stream = await client.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=MESSAGES,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    async for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or () if chunk.choices else ():
            entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += delta.id or ""
            if delta.function is not None:
                entry["name"] += delta.function.name or ""
                entry["arguments"] += delta.function.arguments or ""
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert finish == "tool_calls"
    assert calls[0]["name"] == "get_weather" and calls[0]["id"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert upstreams.openai.chat_requests[0].json["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_weather"},
    }


class Person(BaseModel):
    name: str
    age: int


async def test_json_schema_output(client: openai.AsyncOpenAI, upstreams: Upstreams) -> None:
    upstreams.openai.enqueue(json_reply({"name": "Ada", "age": 36}))
    completion = await client.chat.completions.parse(
        model="openai/gpt-4o-mini", messages=MESSAGES, response_format=Person
    )
    assert completion.choices[0].message.parsed == Person(name="Ada", age=36)
    sent = upstreams.openai.chat_requests[0].json["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Person"
    assert sent["json_schema"]["schema"]["required"] == ["name", "age"]


async def test_image_input(client: openai.AsyncOpenAI, upstreams: Upstreams) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(b"\x89PNG fake").decode()
    raw = await client.chat.completions.with_raw_response.create(
        model="default",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": data_url, "detail": "low"}},
                ],
            }
        ],
    )
    assert raw.parse().choices[0].message.content == Scenario().text
    parts = upstreams.openai.chat_requests[0].json["messages"][0]["content"]
    assert parts[1] == {"type": "image_url", "image_url": {"url": data_url, "detail": "low"}}
    # The image made it a vision request: the route says so.
    assert raw.headers["x-patchbay-provider"] == "openai:main"


async def test_bad_key_is_an_authentication_error(patchbay: Patchbay) -> None:
    async with openai.AsyncOpenAI(
        base_url=patchbay.url + "/v1", api_key="pb-not-a-real-key", max_retries=0
    ) as c:
        with pytest.raises(openai.AuthenticationError) as info:
            await c.chat.completions.create(model="default", messages=MESSAGES)
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"


async def test_unknown_model_is_not_found(client: openai.AsyncOpenAI, upstreams: Upstreams) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(model="nosuchmodel-9000", messages=MESSAGES)
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="agent:nobody", messages=MESSAGES)
    assert upstreams.openai.chat_requests == []


async def test_agent_bound_key_follows_the_agent_chain(patchbay: Patchbay, upstreams: Upstreams) -> None:
    async with openai.AsyncOpenAI(
        base_url=patchbay.url + "/v1", api_key=patchbay.agent_key, max_retries=0
    ) as c:
        raw = await c.chat.completions.with_raw_response.create(model="default", messages=MESSAGES)
        assert raw.headers["x-patchbay-provider"] == "mistral:default"
        explicit = await c.chat.completions.with_raw_response.create(model="agent:support", messages=MESSAGES)
        assert explicit.headers["x-patchbay-model"] == "mistral/mistral-small-latest"
    assert upstreams.openai.chat_requests == []


async def test_models_lists_agents_and_connected_models(client: openai.AsyncOpenAI) -> None:
    ids = [m.id async for m in client.models.list()]
    assert "agent:support" in ids
    assert "openai/gpt-4o-mini" in ids and "mistral/mistral-small-latest" in ids
    assert not any(i.startswith("anthropic/") for i in ids)
    model = await client.models.retrieve("openai/gpt-4o-mini")
    assert model.owned_by == "openai:main"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("anthropic/claude-haiku-4-5")
