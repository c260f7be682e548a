"""OpenRouter's `reasoning_details`, and Gemini signatures sent back the Google way, through
Patchbay's `/v1/chat/completions` with the official openai SDK.

The OpenRouter emulator relays Anthropic's 400 for a thinking tool loop whose assistant message
lost its details (or carries altered ones), as OpenRouter does, so a lost artifact fails the
second request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest

from providers.vault.secret import Secret
from tests.emulators import chat_scenarios as cs
from tests.emulators.anthropic import thinking_signature
from tests.emulators.gemini import DUMMY_SIGNATURES, GeminiEmulator, call_signature
from tests.emulators.harness import ServedGroup
from tests.emulators.openai import OpenAIEmulator, text, tool_calls
from tests.server.v1.conftest import Patchbay
from tests.server.v1.streamed import collect

OPENROUTER_KEY = "sk-or-v1-CANARY-reasoning-0123456789abcdef"
GEMINI_KEY = "AIzaSyCANARY-openrouter-0123456789abcdef"
CLAUDE = "anthropic/claude-sonnet-4.5"
MODEL = "openrouter/" + CLAUDE
GEMINI_MODEL = "gemini/gemini-3-pro-preview"
ASK = [{"role": "user", "content": "weather in Paris?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
THOUGHT = "Paris: call get_weather."
ENTRY = {
    "type": "reasoning.text",
    "text": THOUGHT,
    "signature": thinking_signature(THOUGHT),
    "id": None,
    "format": "anthropic-claude-v1",
    "index": 0,
}


class Upstreams(ServedGroup):
    def __init__(self) -> None:
        self.openrouter = OpenAIEmulator("openrouter", api_key=OPENROUTER_KEY, models=(CLAUDE,))
        self.gemini = GeminiEmulator(api_key=GEMINI_KEY)
        super().__init__(self.openrouter, self.gemini.app)


@pytest.fixture(scope="module")
def served() -> Iterator[Upstreams]:
    with Upstreams() as u:
        yield u


@pytest.fixture
async def upstream(served: Upstreams, patchbay: Patchbay) -> Upstreams:
    served.openrouter.reset()
    served.gemini.reset()
    svc = patchbay.services
    tools = ["text", "tools"]
    async with svc.db.session() as s:
        conns = svc.connections()
        await conns.create(
            s,
            patchbay.org_id,
            provider="openrouter",
            base_url=served.served[0].url + "/api/v1",
            key=Secret(OPENROUTER_KEY),
            models=[{"id": CLAUDE, "capabilities": tools}],
        )
        await conns.create(
            s,
            patchbay.org_id,
            provider="gemini",
            base_url=served.served[1].url,
            key=Secret(GEMINI_KEY),
            models=[{"id": "gemini-3-pro-preview", "capabilities": tools}],
        )
    svc.config_changed(patchbay.org_id)
    return served


@pytest.fixture
async def client(patchbay: Patchbay) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=patchbay.url + "/v1", api_key=patchbay.key, max_retries=0) as c:
        yield c


def results(message: Any) -> list[dict[str, Any]]:
    return [{"role": "tool", "tool_call_id": c.id, "content": "sunny, 18C"} for c in message.tool_calls or ()]


async def test_openrouter_details_round_trip_with_model_dump(
    client: openai.AsyncOpenAI, upstream: Upstreams
) -> None:
    upstream.openrouter.enqueue(tool_calls(("get_weather", {"city": "Paris"}), reasoning_content=THOUGHT))
    upstream.openrouter.enqueue(text("Sunny in Paris."))
    first = await client.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER_TOOL], reasoning_effort="low"
    )
    message = first.choices[0].message
    extra = message.model_extra or {}
    assert extra["reasoning_content"] == THOUGHT
    assert extra["reasoning_details"] == [
        {"type": "reasoning_detail", "detail": ENTRY, "format": "openai-chat:openrouter"}
    ]
    assert upstream.openrouter.chat_requests[0].json["reasoning_effort"] == "low"

    second = await client.chat.completions.create(
        model=MODEL,
        messages=[*ASK, message.model_dump(), *results(message)],
        tools=[WEATHER_TOOL],
        reasoning_effort="low",
    )
    assert second.choices[0].message.content == "Sunny in Paris."
    replayed = upstream.openrouter.chat_requests[1].json["messages"][1]
    assert replayed["reasoning_details"] == [ENTRY]
    assert "reasoning_content" not in replayed


async def test_openrouter_details_streamed_round_trip(
    client: openai.AsyncOpenAI, upstream: Upstreams
) -> None:
    upstream.openrouter.enqueue(tool_calls(("get_weather", {"city": "Paris"}), reasoning_content=THOUGHT))
    upstream.openrouter.enqueue(text("Sunny in Paris."))
    stream = await client.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER_TOOL], reasoning_effort="low", stream=True
    )
    turn = await collect(stream)
    # The pieces OpenRouter streamed arrive as one merged entry, the text once.
    assert turn.reasoning == THOUGHT
    assert turn.details == [{"type": "reasoning_detail", "detail": ENTRY, "format": "openai-chat:openrouter"}]
    call = turn.calls[0]
    assistant = turn.assistant_message()
    tool = {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}
    second = await client.chat.completions.create(
        model=MODEL, messages=[*ASK, assistant, tool], tools=[WEATHER_TOOL], reasoning_effort="low"
    )
    assert second.choices[0].message.content == "Sunny in Paris."


async def test_dropped_openrouter_details_fail_the_continuation(
    client: openai.AsyncOpenAI, upstream: Upstreams
) -> None:
    """The control: without the details the emulator refuses, so the round-trip tests can fail."""
    upstream.openrouter.enqueue(tool_calls(("get_weather", {"city": "Paris"})))
    first = await client.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER_TOOL], reasoning_effort="low"
    )
    message = first.choices[0].message
    stripped = message.model_dump(exclude={"reasoning_details"})
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(
            model=MODEL,
            messages=[*ASK, stripped, *results(message)],
            tools=[WEATHER_TOOL],
            reasoning_effort="low",
        )
    assert "reasoning_details" not in upstream.openrouter.chat_requests[1].json["messages"][1]


async def test_gemini_signature_in_extra_content_is_replayed(
    client: openai.AsyncOpenAI, upstream: Upstreams
) -> None:
    """A client written against Gemini's OpenAI-compatible endpoint sends the signature back on the
    tool call (`extra_content.google.thought_signature`) rather than in `reasoning_details`."""
    upstream.gemini.enqueue(
        cs.thinking(cs.tool_calls(("get_weather", {"city": "Paris"}))), cs.text("Sunny."), cs.text("Sunny.")
    )
    first = await client.chat.completions.create(model=GEMINI_MODEL, messages=ASK, tools=[WEATHER_TOOL])
    message = first.choices[0].message
    issued = call_signature({"name": "get_weather", "args": {"city": "Paris"}})
    google_style = message.model_dump(exclude={"reasoning_details"})
    google_style["tool_calls"][0]["extra_content"] = {"google": {"thought_signature": issued}}
    bare = message.model_dump(exclude={"reasoning_details"})
    for assistant in (google_style, bare):
        reply = await client.chat.completions.create(
            model=GEMINI_MODEL, messages=[*ASK, assistant, *results(message)], tools=[WEATHER_TOOL]
        )
        assert reply.choices[0].message.content == "Sunny."
    sent = [r.json["contents"][1]["parts"][0]["thoughtSignature"] for r in upstream.gemini.requests[1:]]
    # Bare, the turn only gets the dummy signature: the real one came from `extra_content`.
    assert sent[0] == issued and sent[1] in DUMMY_SIGNATURES
