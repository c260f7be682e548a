"""Reasoning artifacts survive a tool-calling round trip through Patchbay, with the official openai SDK.

The client appends the assistant message exactly as the SDK gives it (`model_dump()`) plus the
tool result; the emulators refuse a replay that lacks the signature / thinking block, as Gemini 3
and Anthropic extended thinking do, so a lost artifact fails the second request.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import openai
import pytest

from providers.vault.secret import Secret
from tests.emulators import chat_scenarios as cs
from tests.emulators.anthropic import AnthropicEmulator, thinking_signature
from tests.emulators.gemini import GeminiEmulator, call_signature
from tests.emulators.harness import ServedGroup
from tests.server.v1.conftest import Patchbay, Upstreams
from tests.server.v1.streamed import collect

GEMINI_KEY = "AIzaSyCANARY-reasoning-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-CANARY-reasoning-0123456789"
GEMINI_MODEL = "gemini/gemini-3-pro-preview"
CLAUDE_MODEL = "anthropic/claude-sonnet-4-5"
ASK = [{"role": "user", "content": "weather in Paris?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CALL = cs.thinking(cs.tool_calls(("get_weather", {"city": "Paris"})), "Paris: call get_weather.")


class Thinkers(ServedGroup):
    def __init__(self) -> None:
        self.gemini = GeminiEmulator(api_key=GEMINI_KEY)
        self.anthropic = AnthropicEmulator(api_key=ANTHROPIC_KEY)
        super().__init__(self.gemini.app, self.anthropic.app)


@pytest.fixture(scope="module")
def thinkers_served() -> Iterator[Thinkers]:
    with Thinkers() as t:
        yield t


@pytest.fixture
async def thinkers(thinkers_served: Thinkers, patchbay: Patchbay) -> Thinkers:
    thinkers_served.gemini.reset()
    thinkers_served.anthropic.reset()
    svc = patchbay.services
    async with svc.db.session() as s:
        conns = svc.connections()
        await conns.create(
            s,
            patchbay.org_id,
            provider="gemini",
            base_url=thinkers_served.served[0].url,
            key=Secret(GEMINI_KEY),
            models=[{"id": "gemini-3-pro-preview", "capabilities": ["text", "tools"]}],
        )
        await conns.create(
            s,
            patchbay.org_id,
            provider="anthropic",
            base_url=thinkers_served.served[1].url,
            key=Secret(ANTHROPIC_KEY),
        )
        await svc.agents().set_org_routing(s, patchbay.org_id, chains={"chat": [GEMINI_MODEL, CLAUDE_MODEL]})
    svc.config_changed(patchbay.org_id)
    return thinkers_served


@pytest.fixture
async def client(patchbay: Patchbay) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=patchbay.url + "/v1", api_key=patchbay.key, max_retries=0) as c:
        yield c


def follow_up(message: Any) -> list[dict[str, Any]]:
    """The conversation a client continues: the assistant message as the SDK gives it, and the result."""
    results = [{"role": "tool", "tool_call_id": c.id, "content": "sunny, 18C"} for c in message.tool_calls]
    return [*ASK, message.model_dump(), *results]


async def test_gemini_thought_signature_round_trip(client: openai.AsyncOpenAI, thinkers: Thinkers) -> None:
    thinkers.gemini.enqueue(CALL, cs.text("Sunny in Paris."))
    first = await client.chat.completions.create(model=GEMINI_MODEL, messages=ASK, tools=[WEATHER_TOOL])
    message = first.choices[0].message
    assert message.tool_calls and first.choices[0].finish_reason == "tool_calls"
    details = (message.model_extra or {})["reasoning_details"]
    issued = call_signature({"name": "get_weather", "args": {"city": "Paris"}})
    assert details == [
        {
            "type": "thought_signature",
            "signature": issued,
            "tool_call_id": message.tool_calls[0].id,
            "format": "gemini-generate:gemini",
        }
    ]

    second = await client.chat.completions.create(
        model=GEMINI_MODEL, messages=follow_up(message), tools=[WEATHER_TOOL]
    )
    assert second.choices[0].message.content == "Sunny in Paris."
    model_turn = thinkers.gemini.requests[1].json["contents"][1]
    assert model_turn["parts"][0]["thoughtSignature"] == issued


async def test_anthropic_thinking_round_trip(client: openai.AsyncOpenAI, thinkers: Thinkers) -> None:
    thinkers.anthropic.enqueue(CALL, cs.text("Sunny in Paris."))
    first = await client.chat.completions.create(
        model=CLAUDE_MODEL, messages=ASK, tools=[WEATHER_TOOL], reasoning_effort="low"
    )
    message = first.choices[0].message
    extra = message.model_extra or {}
    assert extra["reasoning_content"] == "Paris: call get_weather."
    assert extra["reasoning_details"] == [
        {
            "type": "thinking",
            "thinking": "Paris: call get_weather.",
            "signature": thinking_signature("Paris: call get_weather."),
            "format": "anthropic-messages:anthropic",
        }
    ]
    sent = thinkers.anthropic.requests[0].json
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}

    second = await client.chat.completions.create(
        model=CLAUDE_MODEL, messages=follow_up(message), tools=[WEATHER_TOOL], reasoning_effort="low"
    )
    assert second.choices[0].message.content == "Sunny in Paris."
    replayed = thinkers.anthropic.requests[1].json["messages"][1]["content"]
    assert [b["type"] for b in replayed] == ["thinking", "tool_use"]


async def test_anthropic_thinking_streamed_round_trip(client: openai.AsyncOpenAI, thinkers: Thinkers) -> None:
    thinkers.anthropic.enqueue(CALL, cs.text("Sunny in Paris."))
    stream = await client.chat.completions.create(
        model=CLAUDE_MODEL, messages=ASK, tools=[WEATHER_TOOL], reasoning_effort="low", stream=True
    )
    turn = await collect(stream)
    assert turn.reasoning == "Paris: call get_weather."
    assert [d["type"] for d in turn.details] == ["thinking"]
    call = turn.calls[0]
    assistant = turn.assistant_message()
    tool = {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}
    second = await client.chat.completions.create(
        model=CLAUDE_MODEL, messages=[*ASK, assistant, tool], tools=[WEATHER_TOOL], reasoning_effort="low"
    )
    assert second.choices[0].message.content == "Sunny in Paris."
    sent = thinkers.anthropic.requests[1].json
    assert sent["thinking"]["type"] == "enabled", "with its block replayed, the continuation may think"
    assert [b["type"] for b in sent["messages"][1]["content"]] == ["thinking", "tool_use"]


async def test_a_dropped_thinking_block_means_a_continuation_without_thinking(
    client: openai.AsyncOpenAI, thinkers: Thinkers
) -> None:
    """The control: the API refuses thinking when the answered turn has no block to replay, so
    Patchbay sends that request without thinking; the round-trip tests see thinking kept."""
    thinkers.anthropic.enqueue(CALL, cs.text("Sunny in Paris."))
    first = await client.chat.completions.create(
        model=CLAUDE_MODEL, messages=ASK, tools=[WEATHER_TOOL], reasoning_effort="low"
    )
    stripped = first.choices[0].message.model_dump(exclude={"reasoning_details"})
    results = [
        {"role": "tool", "tool_call_id": c.id, "content": "sunny"}
        for c in first.choices[0].message.tool_calls or ()
    ]
    second = await client.chat.completions.create(
        model=CLAUDE_MODEL, messages=[*ASK, stripped, *results], tools=[WEATHER_TOOL], reasoning_effort="low"
    )
    assert second.choices[0].message.content == "Sunny in Paris."
    sent = thinkers.anthropic.requests[1].json
    assert "thinking" not in sent
    assert [b["type"] for b in sent["messages"][1]["content"]] == ["tool_use"]


async def test_fallback_sends_no_foreign_artifacts(
    client: openai.AsyncOpenAI, thinkers: Thinkers, upstreams: Upstreams
) -> None:
    thinkers.gemini.enqueue(CALL)
    first = await client.chat.completions.create(model="default", messages=ASK, tools=[WEATHER_TOOL])
    message = first.choices[0].message
    assert (message.model_extra or {})["reasoning_details"][0]["format"] == "gemini-generate:gemini"

    thinkers.gemini.enqueue(cs.error("permission"))
    thinkers.anthropic.enqueue(cs.text("Sunny in Paris."))
    raw = await client.chat.completions.with_raw_response.create(
        model="default", messages=follow_up(message), tools=[WEATHER_TOOL]
    )
    assert raw.headers["x-patchbay-model"] == CLAUDE_MODEL
    assert raw.parse().choices[0].message.content == "Sunny in Paris."
    # Gemini got its signature back; Anthropic got the tool call, and nothing of Gemini's.
    assert "thoughtSignature" in thinkers.gemini.requests[1].json["contents"][1]["parts"][0]
    sent = thinkers.anthropic.requests[0].json
    assert [b["type"] for b in sent["messages"][1]["content"]] == ["tool_use"]
    assert call_signature({"name": "get_weather", "args": {"city": "Paris"}}) not in json.dumps(sent)


async def test_reasoning_tokens_are_reported(client: openai.AsyncOpenAI, thinkers: Thinkers) -> None:
    thinkers.gemini.enqueue(cs.text("Sunny.", usage={"thoughtsTokenCount": 42}))
    completion = await client.chat.completions.create(model=GEMINI_MODEL, messages=ASK)
    usage = completion.usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 42
    assert usage.completion_tokens >= 42


WEATHER = {"name": "get_weather", "input_schema": WEATHER_TOOL["function"]["parameters"]}


@pytest.fixture
async def claude_client(patchbay: Patchbay) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=patchbay.url, api_key=patchbay.key, max_retries=0) as c:
        yield c


@pytest.mark.parametrize(("model", "emulator"), [(CLAUDE_MODEL, "anthropic"), (GEMINI_MODEL, "gemini")])
@pytest.mark.parametrize("streamed", [False, True])
async def test_messages_surface_round_trip(
    claude_client: anthropic.AsyncAnthropic, thinkers: Thinkers, model: str, emulator: str, streamed: bool
) -> None:
    """/v1/messages: Anthropic's thinking blocks natively, Gemini's signature in a packed thinking block."""
    upstream = getattr(thinkers, emulator)
    upstream.enqueue(CALL, cs.text("Sunny in Paris."))
    ask: list[Any] = [{"role": "user", "content": "weather in Paris?"}]
    thinking = {"type": "enabled", "budget_tokens": 2048}
    if streamed:
        async with claude_client.messages.stream(
            model=model, max_tokens=4096, thinking=thinking, tools=[WEATHER], messages=ask
        ) as stream:
            first = await stream.get_final_message()
    else:
        first = await claude_client.messages.create(
            model=model, max_tokens=4096, thinking=thinking, tools=[WEATHER], messages=ask
        )
    assert [b.type for b in first.content] == ["thinking", "tool_use"]
    block = first.content[0]
    assert block.type == "thinking"
    if emulator == "anthropic":
        assert block.thinking == "Paris: call get_weather."
        assert block.signature == thinking_signature("Paris: call get_weather.")
    else:
        assert block.signature.startswith("patchbay.v1.")
    use = next(b for b in first.content if b.type == "tool_use")
    history = [
        *ask,
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},
    ]
    second = await claude_client.messages.create(
        model=model, max_tokens=4096, thinking=thinking, tools=[WEATHER], messages=history
    )
    assert second.content[-1].type == "text" and second.content[-1].text == "Sunny in Paris."
    if emulator == "gemini":
        issued = call_signature({"name": "get_weather", "args": {"city": "Paris"}})
        assert upstream.requests[1].json["contents"][1]["parts"][0]["thoughtSignature"] == issued
