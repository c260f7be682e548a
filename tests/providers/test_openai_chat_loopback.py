"""The `openai-chat` adapter over real loopback HTTP against the emulator, per preset.

Every scripted behaviour runs streaming and not; every failure must surface as the right
`ErrorClass` with no output event before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import pytest

from providers.adapters.base import Endpoint
from providers.adapters.openai_chat import OpenAIChatAdapter
from providers.contract import PRESETS, ErrorClass, ProviderId
from providers.errors import ProviderError, StructuredOutputError
from providers.http import Timeouts
from providers.types import (
    OUTPUT_EVENTS,
    ChatRequest,
    ChatResponse,
    Finish,
    FinishReason,
    JsonSchemaFormat,
    Message,
    Reasoning,
    ReasoningArtifactDone,
    ReasoningConfig,
    ReasoningDelta,
    ReasoningDetail,
    RefusalDelta,
    Role,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDone,
    ToolSpec,
    UsageUpdate,
)
from providers.upstream_pool import UpstreamClients
from tests.emulators import openrouter_reasoning
from tests.emulators.anthropic import thinking_signature
from tests.emulators.harness import ServedApp
from tests.emulators.openai import Flavor, OpenAIEmulator, Scenario, json_reply, refusal, text, tool_calls
from tests.emulators.openai_errors import ERRORS
from tests.providers.test_openai_chat_errors import expected

KEY = "sk-test-CANARY-5f1e2d3c4b5a69788796a5b4"

PRESET_OF: dict[Flavor, tuple[ProviderId, str]] = {
    "openai": (ProviderId.OPENAI, "/v1"),
    "openrouter": (ProviderId.OPENROUTER, "/api/v1"),
    "compat": (ProviderId.OPENAI_COMPATIBLE, "/v1"),
    "mistral": (ProviderId.MISTRAL, "/v1"),
    "xai": (ProviderId.XAI, "/v1"),
    "kimi": (ProviderId.MOONSHOT, "/v1"),
}
MAIN: list[Flavor] = ["openai", "openrouter", "compat"]
FAST = Timeouts(connect=1, first_byte=0.3, between_chunks=0.2)
"""The timeout tests' deadlines (`Rig.fast`): short, so a stalled emulator times out at once."""
STEADY = Timeouts(connect=10, first_byte=10, between_chunks=10)
"""Every other test's: an emulator that answers is never cut off by a loaded machine (0.3 s
to the first byte was, once, in CI: a queued 429 read as a timeout)."""
HANG_GUARD = 10.0
"""How long a test waits for an event that should follow at once: a bound on a hang only."""
PATIENT = Timeouts(first_byte=60, between_chunks=60)
"""Deadlines no test outlives, and longer than the emulator's 30 s stall: with them, a
disconnect the emulator records can only be the client closing the connection."""


class Key:
    fingerprint = "fp:canary"

    def __init__(self, key: str) -> None:
        self._key = key

    def reveal(self, purpose: str) -> str:
        return self._key


@pytest.fixture(scope="module")
def emulators() -> Iterator[dict[Flavor, tuple[OpenAIEmulator, str]]]:
    served: dict[Flavor, tuple[OpenAIEmulator, str]] = {}
    servers = []
    for flavor in PRESET_OF:
        emu = OpenAIEmulator(flavor)
        server = ServedApp(emu).start()
        servers.append(server)
        served[flavor] = (emu, server.url)
    yield served
    for server in servers:
        server.stop()


@pytest.fixture
async def adapter() -> AsyncIterator[OpenAIChatAdapter]:
    async with UpstreamClients() as clients:
        yield OpenAIChatAdapter(clients, STEADY)


class Rig:
    def __init__(self, emu: OpenAIEmulator, endpoint: Endpoint, adapter: OpenAIChatAdapter) -> None:
        self.emu = emu
        self.endpoint = endpoint
        self.adapter = adapter

    async def complete(self, req: ChatRequest | None = None) -> ChatResponse:
        return await self.adapter.complete(req or REQUEST, self.endpoint)

    async def stream(self, req: ChatRequest | None = None) -> list[StreamEvent]:
        return [e async for e in self.adapter.stream(req or REQUEST, self.endpoint)]

    def fast(self) -> Rig:
        """This rig with FAST's deadlines, for the tests of what a deadline does."""
        return Rig(self.emu, self.endpoint, OpenAIChatAdapter(self.adapter._clients, FAST))

    async def fails(
        self, streaming: bool, req: ChatRequest | None = None
    ) -> tuple[ProviderError, list[StreamEvent]]:
        seen: list[StreamEvent] = []
        with pytest.raises(ProviderError) as info:
            if streaming:
                async for event in self.adapter.stream(req or REQUEST, self.endpoint):
                    seen.append(event)
            else:
                await self.complete(req)
        return info.value, seen


def rig_for(
    flavor: Flavor, emulators: dict[Flavor, tuple[OpenAIEmulator, str]], adapter: OpenAIChatAdapter
) -> Rig:
    emu, url = emulators[flavor]
    emu.reset()
    provider, prefix = PRESET_OF[flavor]
    return Rig(emu, Endpoint(PRESETS[provider], url + prefix, Key(KEY), label=f"{provider}:test"), adapter)


@pytest.fixture(params=MAIN)
def rig(request: pytest.FixtureRequest, emulators: Any, adapter: OpenAIChatAdapter) -> Rig:
    return rig_for(request.param, emulators, adapter)


REQUEST = ChatRequest(
    model="gpt-4o-mini",
    messages=(Message(Role.SYSTEM, (TextPart("Be brief."),)), Message(Role.USER, (TextPart("Hi!"),))),
    max_output_tokens=100,
)
WEATHER = JsonSchemaFormat(
    "weather",
    {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
)


def texts(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_text(rig: Rig) -> None:
    rig.emu.enqueue(
        text("Bonjour, comment puis-je vous aider aujourd'hui ?"),
        text("Bonjour, comment puis-je vous aider aujourd'hui ?"),
    )
    response = await rig.complete()
    events = await rig.stream()
    assert response.text == texts(events) == "Bonjour, comment puis-je vous aider aujourd'hui ?"
    assert response.finish_reason is FinishReason.STOP
    assert response.usage.input_tokens > 0
    assert len([e for e in events if isinstance(e, TextDelta)]) > 3
    assert isinstance(events[-2], UsageUpdate)
    assert events[-2].usage.output_tokens > 0
    assert events[-1] == Finish(FinishReason.STOP)


async def test_wire_request(rig: Rig) -> None:
    await rig.complete()
    await rig.stream()
    plain, streamed = rig.emu.chat_requests
    assert plain.headers["authorization"] == f"Bearer {KEY}"
    assert plain.headers["content-type"] == "application/json"
    assert "stream" not in plain.json
    assert streamed.json["stream"] is True
    assert streamed.json["stream_options"] == {"include_usage": True}
    assert streamed.headers["accept"] == "text/event-stream"
    field = "max_completion_tokens" if rig.endpoint.preset.id is ProviderId.OPENAI else "max_tokens"
    assert plain.json[field] == 100
    # A loopback "OpenAI" is not api.openai.com: no developer role there.
    assert plain.json["messages"][0]["role"] == "system"


@pytest.mark.parametrize("streaming", [False, True])
async def test_parallel_tool_calls(rig: Rig, streaming: bool) -> None:
    rig.emu.enqueue(
        tool_calls(
            ("get_weather", {"city": "Paris", "unit": "celsius"}), ("get_time", {"tz": "Europe/Paris"})
        )
    )
    req = ChatRequest(
        model="gpt-4o-mini", messages=REQUEST.messages, tools=(ToolSpec("get_weather"), ToolSpec("get_time"))
    )
    if streaming:
        events = await rig.stream(req)
        calls = [e.call for e in events if isinstance(e, ToolCallDone)]
        assert events[-1] == Finish(FinishReason.TOOL_CALLS)
    else:
        response = await rig.complete(req)
        calls = list(response.tool_calls)
        assert response.finish_reason is FinishReason.TOOL_CALLS
    assert [c.name for c in calls] == ["get_weather", "get_time"]
    assert [c.parsed_arguments() for c in calls] == [
        {"city": "Paris", "unit": "celsius"},
        {"tz": "Europe/Paris"},
    ]
    assert len({c.id for c in calls}) == 2


async def test_structured_output(rig: Rig) -> None:
    rig.emu.enqueue(json_reply({"city": "Paris"}), json_reply({"city": "Paris"}))
    req = ChatRequest(model="gpt-4o-mini", messages=REQUEST.messages, response_format=WEATHER)
    assert (await rig.complete(req)).parsed == {"city": "Paris"}
    events = await rig.stream(req)
    assert texts(events) == '{"city":"Paris"}'
    assert rig.emu.chat_requests[0].json["response_format"]["type"] == "json_schema"


@pytest.mark.parametrize("streaming", [False, True])
async def test_structured_output_that_does_not_validate(rig: Rig, streaming: bool) -> None:
    rig.emu.enqueue(json_reply({"town": "Paris"}))
    req = ChatRequest(model="gpt-4o-mini", messages=REQUEST.messages, response_format=WEATHER)
    err, seen = await rig.fails(streaming, req)
    assert isinstance(err, StructuredOutputError)
    assert not any(isinstance(e, Finish) for e in seen)


async def test_refusal(rig: Rig) -> None:
    rig.emu.enqueue(refusal("I can't help with that."), refusal("I can't help with that."), refusal())
    response = await rig.complete()
    assert (response.refusal, response.finish_reason) == (
        "I can't help with that.",
        FinishReason.CONTENT_FILTER,
    )
    events = await rig.stream()
    assert "".join(e.text for e in events if isinstance(e, RefusalDelta)) == "I can't help with that."
    assert events[-1] == Finish(FinishReason.CONTENT_FILTER)
    err, _ = await rig.fails(
        False, ChatRequest(model="m", messages=REQUEST.messages, response_format=WEATHER)
    )
    assert err.error_class is ErrorClass.CONTENT_FILTER


ALL_ERRORS = [(f, k) for f, kinds in ERRORS.items() for k in kinds]


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("flavor,kind", ALL_ERRORS, ids=[f"{f}-{k}" for f, k in ALL_ERRORS])
async def test_http_errors(
    emulators: Any, adapter: OpenAIChatAdapter, flavor: Flavor, kind: str, streaming: bool
) -> None:
    rig = rig_for(flavor, emulators, adapter)
    scenario = ERRORS[flavor][kind]
    rig.emu.enqueue(scenario)
    err, seen = await rig.fails(streaming)
    assert err.error_class is expected(kind)
    assert err.status == scenario.status
    assert err.model == REQUEST.model
    assert err.request_id is not None and err.request_id.startswith("req_")
    assert seen == []
    for text_ in (str(err), repr(err), err.message, *map(str, err.args)):
        assert "CANARY" not in text_
    if "retry-after" in scenario.headers:
        assert err.retry_after == float(scenario.headers["retry-after"])


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
async def test_bare_529_is_overloaded(rig: Rig, streaming: bool) -> None:
    # Anthropic's "overloaded" status, here from an edge in front of an OpenAI-format server;
    # the speech engines read it through the same table (tests/providers/speech).
    rig.emu.enqueue(Scenario(status=529, error_body=b"<html><body>Site is overloaded</body></html>"))
    err, seen = await rig.fails(streaming)
    assert (err.error_class, err.status, seen) == (ErrorClass.OVERLOADED, 529, [])


async def test_key_echoed_in_401_never_reaches_the_error(emulators: Any, adapter: OpenAIChatAdapter) -> None:
    emu, url = emulators["openai"]
    emu.reset()
    emu.api_key = "sk-the-right-one"
    try:
        endpoint = Endpoint(PRESETS[ProviderId.OPENAI], url + "/v1", Key(KEY))
        with pytest.raises(ProviderError) as info:
            await adapter.complete(REQUEST, endpoint)
    finally:
        emu.api_key = None
    assert info.value.error_class is ErrorClass.AUTH
    assert "Incorrect API key provided: [redacted]" in info.value.message
    assert "CANARY" not in f"{info.value!s}{info.value!r}{info.value.args}"


@pytest.mark.parametrize("streaming", [False, True])
async def test_slow_first_byte_times_out(rig: Rig, streaming: bool) -> None:
    # The emulator would answer normally after a minute: only FAST's deadline gives TIMEOUT.
    rig.emu.enqueue(Scenario(first_byte_delay=60))
    err, seen = await rig.fast().fails(streaming)
    assert err.error_class is ErrorClass.TIMEOUT
    assert "first byte" in err.message
    assert seen == []
    assert await asyncio.to_thread(rig.emu.wait_disconnect, HANG_GUARD) is not None


async def test_headers_then_silence_times_out(rig: Rig) -> None:
    rig.emu.enqueue(Scenario(body_delay=5))
    err, seen = await rig.fast().fails(True)
    assert err.error_class is ErrorClass.TIMEOUT
    assert seen == []


@pytest.mark.parametrize("streaming", [False, True])
async def test_stall_mid_body_times_out_and_hangs_up(rig: Rig, streaming: bool) -> None:
    rig.emu.enqueue(Scenario(stall_after=4 if streaming else 1))
    err, seen = await rig.fast().fails(streaming)
    assert err.error_class is ErrorClass.TIMEOUT
    assert "between chunks" in err.message
    assert any(isinstance(e, OUTPUT_EVENTS) for e in seen) == streaming
    assert await asyncio.to_thread(rig.emu.wait_disconnect, 2) is not None


@pytest.mark.parametrize("streaming", [False, True])
async def test_disconnect_mid_body_is_network(rig: Rig, streaming: bool) -> None:
    rig.emu.enqueue(Scenario(drop_after=1 if not streaming else 4))
    err, _ = await rig.fails(streaming)
    assert err.error_class is ErrorClass.NETWORK


async def test_stream_without_done_is_network(rig: Rig) -> None:
    rig.emu.enqueue(Scenario(truncate_after=5))
    err, seen = await rig.fails(True)
    assert err.error_class is ErrorClass.NETWORK
    assert "[DONE]" in err.message
    assert texts(seen)


async def test_malformed_body_is_server_error(rig: Rig) -> None:
    rig.emu.enqueue(Scenario(status=200, error_body=b"<html><body>Welcome to the proxy</body></html>"))
    err, _ = await rig.fails(False)
    assert err.error_class is ErrorClass.SERVER_ERROR


async def test_malformed_sse_is_server_error(rig: Rig) -> None:
    rig.emu.enqueue(Scenario(malformed_after=3))
    err, _ = await rig.fails(True)
    assert err.error_class is ErrorClass.SERVER_ERROR


async def test_in_stream_error_after_200(rig: Rig) -> None:
    rig.emu.enqueue(Scenario(error_after=4, stream_error={"code": 502, "message": "Upstream disconnected"}))
    err, seen = await rig.fails(True)
    assert err.error_class is ErrorClass.SERVER_ERROR
    assert err.status is None
    assert texts(seen)


async def test_in_stream_overloaded(rig: Rig) -> None:
    rig.emu.enqueue(
        Scenario(
            error_after=2, stream_error={"message": "overloaded", "type": "server_error", "code": "slow_down"}
        )
    )
    err, _ = await rig.fails(True)
    assert err.error_class is ErrorClass.OVERLOADED


async def test_cancelled_consumer_hangs_up(rig: Rig) -> None:
    rig.emu.enqueue(Scenario(stall_after=4))
    adapter = OpenAIChatAdapter(rig.adapter._clients, PATIENT)
    got_output = asyncio.Event()

    async def consume() -> None:
        async for event in adapter.stream(REQUEST, rig.endpoint):
            if isinstance(event, TextDelta):
                got_output.set()

    task = asyncio.create_task(consume())
    await got_output.wait()
    assert rig.emu.disconnects == []
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(rig.emu.wait_disconnect, HANG_GUARD) is not None


async def test_closed_generator_hangs_up(rig: Rig) -> None:
    rig.emu.enqueue(Scenario(stall_after=4))
    adapter = OpenAIChatAdapter(rig.adapter._clients, PATIENT)
    stream = adapter.stream(REQUEST, rig.endpoint)
    assert isinstance(stream, AsyncGenerator)
    assert isinstance(await anext(stream), TextDelta)
    assert rig.emu.disconnects == []
    await stream.aclose()
    assert await asyncio.to_thread(rig.emu.wait_disconnect, HANG_GUARD) is not None


async def test_router_style_script_per_model(emulators: Any, adapter: OpenAIChatAdapter) -> None:
    rig = rig_for("openrouter", emulators, adapter)
    rig.emu.always(ERRORS["openrouter"]["rate_limit"], model="busy/model")
    for _ in range(2):
        err, _ = await rig.fails(False, ChatRequest(model="busy/model", messages=REQUEST.messages))
        assert (err.error_class, err.retry_after) == (ErrorClass.RATE_LIMIT, 2.0)
    assert (await rig.complete(ChatRequest(model="free/model", messages=REQUEST.messages))).text
    assert [r.json["model"] for r in rig.emu.chat_requests] == ["busy/model", "busy/model", "free/model"]


async def test_openrouter_keepalives_and_usage(emulators: Any, adapter: OpenAIChatAdapter) -> None:
    rig = rig_for("openrouter", emulators, adapter)
    rig.emu.enqueue(Scenario(prompt_tokens=12, completion_tokens=7, cached_tokens=4))
    events = await rig.stream()
    usage = [e.usage for e in events if isinstance(e, UsageUpdate)]
    assert [(u.input_tokens, u.output_tokens, u.cached_input_tokens) for u in usage] == [(12, 7, 4)]


@pytest.mark.parametrize("flavor", ["kimi", "mistral"])
async def test_vendor_usage_placement(emulators: Any, adapter: OpenAIChatAdapter, flavor: Flavor) -> None:
    rig = rig_for(flavor, emulators, adapter)
    rig.emu.enqueue(Scenario(prompt_tokens=30, completion_tokens=5))
    events = await rig.stream()
    assert [e.usage.input_tokens for e in events if isinstance(e, UsageUpdate)] == [30]


async def test_mistral_tool_ids_on_the_wire(emulators: Any, adapter: OpenAIChatAdapter) -> None:
    from providers.types import ToolCall

    rig = rig_for("mistral", emulators, adapter)
    history = (
        Message(Role.USER, (TextPart("weather?"),)),
        Message(Role.ASSISTANT, tool_calls=(ToolCall("call_from_openai_0123456789", "get_weather", "{}"),)),
        Message(Role.TOOL, (TextPart("sunny"),), tool_call_id="call_from_openai_0123456789"),
    )
    await rig.complete(ChatRequest(model="mistral-large-latest", messages=history))
    sent = rig.emu.chat_requests[0].json["messages"]
    wire_id = sent[1]["tool_calls"][0]["id"]
    assert len(wire_id) == 9 and wire_id.isalnum()
    assert sent[2]["tool_call_id"] == wire_id


async def test_structured_stream_refusal_is_content_filter(rig: Rig) -> None:
    rig.emu.enqueue(refusal())
    err, seen = await rig.fails(
        True, ChatRequest(model="m", messages=REQUEST.messages, response_format=WEATHER)
    )
    assert err.error_class is ErrorClass.CONTENT_FILTER
    assert any(isinstance(e, RefusalDelta) for e in seen)


async def test_server_that_ignores_stream_true(rig: Rig) -> None:
    rig.emu.enqueue(
        Scenario(text="", tool_calls=tool_calls(("f", {"a": 1})).tool_calls, ignore_stream=True),
        Scenario(text="plain", ignore_stream=True),
    )
    events = await rig.stream()
    assert [type(e).__name__ for e in events] == [
        "ToolCallStart",
        "ToolCallDelta",
        "ToolCallDone",
        "UsageUpdate",
        "Finish",
    ]
    assert events[-1] == Finish(FinishReason.TOOL_CALLS)
    assert texts(await rig.stream()) == "plain"


@pytest.mark.parametrize("streaming", [False, True])
async def test_error_body_with_http_200(emulators: Any, adapter: OpenAIChatAdapter, streaming: bool) -> None:
    rig = rig_for("openrouter", emulators, adapter)
    body = {"error": {"code": 502, "message": "Provider returned error"}}
    rig.emu.enqueue(Scenario(status=200, error_body=body))
    err, seen = await rig.fails(streaming)
    assert err.error_class is ErrorClass.SERVER_ERROR
    assert seen == []


@pytest.mark.parametrize("streaming", [False, True])
async def test_kimi_thinking_reasoning_content_round_trip(
    emulators: Any, adapter: OpenAIChatAdapter, streaming: bool
) -> None:
    """Kimi's thinking models refuse a tool-call history without `reasoning_content`; ours carries it."""
    rig = rig_for("kimi", emulators, adapter)
    rig.emu.enqueue(
        replace(tool_calls(("get_weather", {"city": "Paris"})), reasoning_content="Call the weather tool.")
    )
    ask = ChatRequest(model="kimi-k2-thinking", messages=(Message(Role.USER, (TextPart("Weather?"),)),))
    if streaming:
        events = await rig.stream(ask)
        call = next(e.call for e in events if isinstance(e, ToolCallDone))
        artifacts = tuple(e.artifact for e in events if isinstance(e, ReasoningArtifactDone))
        reasoning = Reasoning(
            text="".join(e.text for e in events if isinstance(e, ReasoningDelta)), artifacts=artifacts
        )
    else:
        first = await rig.complete(ask)
        call, reasoning = first.tool_calls[0], first.reasoning
    assert reasoning.text == "Call the weather tool." and len(reasoning.artifacts) == 1
    follow = replace(
        ask,
        messages=(
            *ask.messages,
            Message(Role.ASSISTANT, tool_calls=(call,), reasoning=reasoning),
            Message(Role.TOOL, (TextPart("sunny"),), tool_call_id=call.id),
        ),
    )
    assert (await rig.complete(follow)).text == Scenario().text
    assert rig.emu.chat_requests[-1].json["messages"][1]["reasoning_content"] == "Call the weather tool."
    # The same history without the artifact is what Kimi refuses.
    bare = replace(follow, messages=tuple(replace(m, reasoning=Reasoning()) for m in follow.messages))
    error, _ = await rig.fails(False, bare)
    assert error.error_class is ErrorClass.INVALID_REQUEST


async def turn(rig: Rig, req: ChatRequest, streaming: bool) -> tuple[tuple[ToolCall, ...], str, Reasoning]:
    """One turn's calls, text and reasoning, read from the stream's events or from the response."""
    if not streaming:
        response = await rig.complete(req)
        return response.tool_calls, response.text, response.reasoning
    events = await rig.stream(req)
    reasoning = Reasoning(
        text="".join(e.text for e in events if isinstance(e, ReasoningDelta)),
        artifacts=tuple(e.artifact for e in events if isinstance(e, ReasoningArtifactDone)),
    )
    return tuple(e.call for e in events if isinstance(e, ToolCallDone)), texts(events), reasoning


def signed_detail(thought: str) -> ReasoningDetail:
    entry = {
        "type": "reasoning.text",
        "text": thought,
        "signature": thinking_signature(thought),
        "id": None,
        "format": "anthropic-claude-v1",
        "index": 0,
    }
    return ReasoningDetail("openai-chat:openrouter", entry)


@pytest.mark.parametrize("streaming", [False, True])
async def test_openrouter_anthropic_tool_loop_replays_reasoning_details(
    emulators: Any, adapter: OpenAIChatAdapter, streaming: bool
) -> None:
    """Anthropic behind OpenRouter refuses a tool loop whose turns lost their signed
    `reasoning_details`; ours carry each turn's back, turn after turn."""
    rig = rig_for("openrouter", emulators, adapter)
    rig.emu.enqueue(
        replace(tool_calls(("get_weather", {"city": "Paris"})), reasoning_content="Weather first."),
        replace(tool_calls(("get_time", {"tz": "Europe/Paris"})), reasoning_content="Now the time."),
        text("Sunny, 18C, 14:00."),
    )
    history = [Message(Role.USER, (TextPart("Weather and time in Paris?"),))]

    def ask(messages: list[Message]) -> ChatRequest:
        return ChatRequest(
            model="anthropic/claude-sonnet-4.5",
            messages=tuple(messages),
            tools=(ToolSpec("get_weather"), ToolSpec("get_time")),
            reasoning=ReasoningConfig(effort="low"),
        )

    for thought, result in (("Weather first.", "sunny, 18C"), ("Now the time.", "14:00")):
        calls, _, reasoning = await turn(rig, ask(history), streaming)
        assert reasoning == Reasoning(text=thought, artifacts=(signed_detail(thought),))
        history += [
            Message(Role.ASSISTANT, tool_calls=calls, reasoning=reasoning),
            Message(Role.TOOL, (TextPart(result),), tool_call_id=calls[0].id),
        ]
    assert (await turn(rig, ask(history), streaming))[1] == "Sunny, 18C, 14:00."
    sent = [m for m in rig.emu.chat_requests[-1].json["messages"] if m["role"] == "assistant"]
    assert [m["reasoning_details"] for m in sent] == [
        [dict(signed_detail("Weather first.").detail)],
        [dict(signed_detail("Now the time.").detail)],
    ]

    # Without the replay, or with a detail altered, OpenRouter relays Anthropic's 400.
    bare = [replace(m, reasoning=Reasoning()) for m in history]
    altered = signed_detail("Now the time.")
    altered = replace(altered, detail={**altered.detail, "text": "Something else."})
    forged = [*history[:3], replace(history[3], reasoning=Reasoning(artifacts=(altered,))), history[4]]
    for broken, why in ((bare, "Expected `thinking`"), (forged, "Invalid `signature`")):
        error, seen = await rig.fails(streaming, ask(broken))
        assert error.error_class is ErrorClass.INVALID_REQUEST and seen == []
        refused = openrouter_reasoning.refusal(rig.emu.chat_requests[-1].json)
        assert refused is not None and why in refused["error"]["metadata"]["raw"]
