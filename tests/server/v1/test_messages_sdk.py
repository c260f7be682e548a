"""The official anthropic SDK against /v1/messages, routed to an OpenAI-wire upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import pytest

from tests.emulators.openai import Scenario, tool_calls
from tests.server.v1.conftest import Patchbay, Upstreams

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
async def client(patchbay: Patchbay) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=patchbay.url, api_key=patchbay.key, max_retries=0) as c:
        yield c


async def test_plain_message(client: anthropic.AsyncAnthropic, upstreams: Upstreams) -> None:
    raw = await client.messages.with_raw_response.create(
        model="default",
        max_tokens=100,
        system="be terse",
        messages=[{"role": "user", "content": "hi"}],
    )
    message = await raw.parse()
    assert message.content[0].type == "text" and message.content[0].text == Scenario().text
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens > 0
    assert raw.headers["x-patchbay-provider"] == "openai:main"
    sent = upstreams.openai.chat_requests[0].json
    assert sent["messages"][0] == {"role": "system", "content": "be terse"}
    assert 100 in (sent.get("max_completion_tokens"), sent.get("max_tokens"))


async def test_streamed_message(client: anthropic.AsyncAnthropic) -> None:
    async with client.messages.stream(
        model="default", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == Scenario().text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0


async def test_tool_use_round_trip(client: anthropic.AsyncAnthropic, upstreams: Upstreams) -> None:
    upstreams.openai.enqueue(tool_calls(("get_weather", {"city": "Paris"})))
    message = await client.messages.create(
        model="default",
        max_tokens=100,
        tools=[WEATHER],
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "weather in Paris?"}],
    )
    assert message.stop_reason == "tool_use"
    use = next(b for b in message.content if b.type == "tool_use")
    assert use.name == "get_weather" and use.input == {"city": "Paris"}
    assert upstreams.openai.chat_requests[0].json["tool_choice"] == "required"

    await client.messages.create(
        model="default",
        max_tokens=100,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": [b.model_dump() for b in message.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},
        ],
    )
    replayed = upstreams.openai.chat_requests[1].json["messages"]
    assert [m["role"] for m in replayed] == ["user", "assistant", "tool"]
    assert replayed[2]["tool_call_id"] == use.id and replayed[2]["content"] == "sunny"


async def test_streamed_tool_use(client: anthropic.AsyncAnthropic, upstreams: Upstreams) -> None:
    upstreams.openai.enqueue(tool_calls(("get_weather", {"city": "Oslo"})))
    async with client.messages.stream(
        model="default", max_tokens=100, tools=[WEATHER], messages=[{"role": "user", "content": "Oslo?"}]
    ) as stream:
        final = await stream.get_final_message()
    use = next(b for b in final.content if b.type == "tool_use")
    assert use.input == {"city": "Oslo"} and final.stop_reason == "tool_use"


async def test_unknown_model_is_a_typed_error(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.create(
            model="nosuch-model", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
