"""The anthropic-messages adapter over real loopback HTTP against the Anthropic emulator."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace

import pytest

from providers.adapters.anthropic_messages import AnthropicMessagesAdapter
from providers.contract import PRESETS, AuthStyle, ErrorClass, ProviderId
from providers.errors import ProviderError, StructuredOutputError
from providers.http import Timeouts
from providers.types import (
    AudioPart,
    ChatRequest,
    Finish,
    FinishReason,
    Message,
    ReasoningConfig,
    Role,
    StreamEvent,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStart,
    UsageUpdate,
)
from providers.upstream_pool import Backend, UpstreamClients
from tests.emulators import chat_scenarios as cs
from tests.emulators.anthropic import AnthropicEmulator
from tests.providers import chat_rig
from tests.providers.chat_rig import CITY_SCHEMA, WEATHER, collect, text_of

CANARY = "sk-ant-api03-CANARY-d41d8cd98f00b204e9800998ecf8427e"
MODEL = "claude-sonnet-4-6"


Rig = chat_rig.Rig[AnthropicEmulator]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[AnthropicEmulator, str]]:
    yield from chat_rig.serve(AnthropicEmulator(api_key=CANARY))


@pytest.fixture
def served(server: tuple[AnthropicEmulator, str]) -> tuple[AnthropicEmulator, str]:
    server[0].reset()
    return server


@pytest.fixture
async def clients() -> AsyncIterator[UpstreamClients]:
    async with UpstreamClients() as pool:
        yield pool


def make_rig(served: tuple[AnthropicEmulator, str], clients: UpstreamClients, **kwargs: object) -> Rig:
    adapter = AnthropicMessagesAdapter(clients, **kwargs)
    return chat_rig.make_rig(served, adapter, PRESETS[ProviderId.ANTHROPIC], CANARY, "anthropic:test")


@pytest.fixture
def rig(served: tuple[AnthropicEmulator, str], clients: UpstreamClients) -> Rig:
    return make_rig(served, clients)


def ask(text: str = "Hello", **kwargs: object) -> ChatRequest:
    return ChatRequest(model=MODEL, messages=(Message(Role.USER, (TextPart(text),)),), **kwargs)


async def test_complete_text_sends_pinned_version_and_key_header(rig: Rig) -> None:
    rig.emulator.enqueue(cs.text("Bonjour, Paris!"))
    response = await rig.adapter.complete(ask(temperature=0.5), rig.endpoint)
    assert response.text == "Bonjour, Paris!"
    assert response.finish_reason is FinishReason.STOP
    assert response.response_id == "msg_01EmulatorMessage000001"
    assert response.usage.output_tokens > 0
    (sent,) = rig.emulator.requests
    assert sent.path == "/v1/messages"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["x-api-key"] == CANARY
    assert "authorization" not in sent.headers
    assert sent.json["temperature"] == 0.5
    assert sent.json["max_tokens"] == 4096
    assert "stream" not in sent.json
    assert rig.key.purposes == ["chat"]


async def test_bearer_auth_style_sends_authorization(
    served: tuple[AnthropicEmulator, str], clients: UpstreamClients
) -> None:
    rig = make_rig(served, clients)
    bearer = replace(rig.endpoint, preset=replace(rig.endpoint.preset, auth_style=AuthStyle.BEARER))
    await rig.adapter.complete(ask(), bearer)
    (sent,) = rig.emulator.requests
    assert sent.headers["authorization"] == f"Bearer {CANARY}"
    assert "x-api-key" not in sent.headers


async def test_version_2026_strips_sampling_params_and_is_accepted(
    served: tuple[AnthropicEmulator, str], clients: UpstreamClients
) -> None:
    rig = make_rig(served, clients, version="2026-10-21")
    response = await rig.adapter.complete(ask(temperature=0.5), rig.endpoint)
    assert response.finish_reason is FinishReason.STOP
    (sent,) = rig.emulator.requests
    assert sent.headers["anthropic-version"] == "2026-10-21"
    assert "temperature" not in sent.json


async def test_cache_usage_is_normalized(rig: Rig) -> None:
    rig.emulator.enqueue(
        cs.text(
            "ok",
            usage={"input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20},
        )
    )
    usage = (await rig.adapter.complete(ask(), rig.endpoint)).usage
    assert (usage.input_tokens, usage.cached_input_tokens, usage.cache_write_tokens) == (130, 100, 20)


@pytest.mark.parametrize("fragment", [None, 13])
async def test_stream_text_reassembles_and_ends_with_finish(rig: Rig, fragment: int | None) -> None:
    answer = "Streaming works, even with ünïcödé split across chunks."
    rig.emulator.enqueue(
        cs.ChatScenario(
            text=answer,
            pieces=6,
            fragment_bytes=fragment,
            usage={"input_tokens": 11, "cache_read_input_tokens": 4},
        )
    )
    events = await collect(rig, ask())
    assert text_of(events) == answer
    assert isinstance(events[-1], Finish) and events[-1].reason is FinishReason.STOP
    usages = [e.usage for e in events if isinstance(e, UsageUpdate)]
    assert usages[0].output_tokens == 1
    assert usages[-1].input_tokens == 15 and usages[-1].cached_input_tokens == 4
    assert usages[-1].output_tokens > 1
    assert rig.emulator.requests[0].json["stream"] is True


async def test_parallel_tool_calls_complete(rig: Rig) -> None:
    rig.emulator.enqueue(
        cs.tool_calls(("get_weather", {"city": "Paris"}), ("get_time", {}), text="Checking.")
    )
    response = await rig.adapter.complete(ask(tools=(WEATHER,)), rig.endpoint)
    assert response.finish_reason is FinishReason.TOOL_CALLS
    assert response.text == "Checking."
    assert [(c.name, c.parsed_arguments()) for c in response.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {}),
    ]
    assert rig.emulator.requests[0].json["tools"][0]["input_schema"] == WEATHER.parameters


async def test_parallel_tool_calls_stream(rig: Rig) -> None:
    args = {"city": "Paris", "units": "metric", "days": 3}
    rig.emulator.enqueue(cs.tool_calls(("get_weather", args), ("get_time", {})))
    events = await collect(rig, ask(tools=(WEATHER,), parallel_tool_calls=False))
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    assert [(s.index, s.name) for s in starts] == [(0, "get_weather"), (1, "get_time")]
    fragments = [e.arguments for e in events if isinstance(e, ToolCallDelta) and e.index == 0]
    assert len(fragments) > 1 and json.loads("".join(fragments)) == args
    done = {e.index: e.call for e in events if isinstance(e, ToolCallDone)}
    assert done[0].parsed_arguments() == args and done[0].id == starts[0].id
    assert done[1].parsed_arguments() == {}
    assert isinstance(events[-1], Finish) and events[-1].reason is FinishReason.TOOL_CALLS
    assert rig.emulator.requests[0].json["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


async def test_structured_output_complete_is_validated(rig: Rig) -> None:
    rig.emulator.enqueue(cs.json_reply({"name": "Paris", "population": 2102650}))
    response = await rig.adapter.complete(ask(response_format=CITY_SCHEMA), rig.endpoint)
    assert response.parsed == {"name": "Paris", "population": 2102650}
    assert json.loads(response.text) == response.parsed
    assert response.finish_reason is FinishReason.STOP and response.tool_calls == ()
    sent = rig.emulator.requests[0].json
    assert sent["tool_choice"] == {"type": "tool", "name": "city"}
    assert sent["tools"][-1]["input_schema"] == CITY_SCHEMA.schema


async def test_structured_output_stream_yields_json_text(rig: Rig) -> None:
    rig.emulator.enqueue(cs.json_reply({"name": "Lyon", "population": 522250}))
    events = await collect(rig, ask(response_format=CITY_SCHEMA))
    assert json.loads(text_of(events)) == {"name": "Lyon", "population": 522250}
    assert not any(isinstance(e, ToolCallStart) for e in events)
    assert isinstance(events[-1], Finish) and events[-1].reason is FinishReason.STOP


@pytest.mark.parametrize(
    "forced",
    [{"response_format": CITY_SCHEMA}, {"tools": (WEATHER,), "tool_choice": "required"}],
    ids=["structured-output", "required-tool"],
)
async def test_reasoning_gives_way_to_forced_tool_use(rig: Rig, forced: dict[str, object]) -> None:
    """The API refuses thinking with a forced tool; the forced call is kept and thinking left out."""
    rig.emulator.enqueue(cs.json_reply({"name": "Paris", "population": 2102650}))
    rig.emulator.enqueue(cs.text("unforced"))
    await rig.adapter.complete(ask(reasoning=ReasoningConfig(effort="low"), **forced), rig.endpoint)
    sent = rig.emulator.requests[0].json
    assert sent["tool_choice"]["type"] in ("any", "tool") and "thinking" not in sent
    await rig.adapter.complete(ask(tools=(WEATHER,), reasoning=ReasoningConfig(effort="low")), rig.endpoint)
    assert rig.emulator.requests[1].json["thinking"]["type"] == "enabled"


async def test_reasoning_left_out_when_answering_tool_calls_made_elsewhere(rig: Rig) -> None:
    """A tool loop that began on another provider has no thinking block to replay, which the API demands."""
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')
    history = (
        Message(Role.USER, (TextPart("weather?"),)),
        Message(Role.ASSISTANT, (), tool_calls=(call,)),
        Message(Role.TOOL, (TextPart("sunny"),), tool_call_id="call_1"),
    )
    rig.emulator.enqueue(cs.text("It is sunny."))
    request = ChatRequest(model=MODEL, messages=history, tools=(WEATHER,), reasoning=ReasoningConfig())
    response = await rig.adapter.complete(request, rig.endpoint)
    assert response.text == "It is sunny." and "thinking" not in rig.emulator.requests[0].json
    rig.emulator.enqueue(cs.text("Anything else?"))
    fresh = replace(
        request,
        messages=(
            *history,
            Message(Role.ASSISTANT, (TextPart("It is sunny."),)),
            Message(Role.USER, (TextPart("thanks"),)),
        ),
    )
    await rig.adapter.complete(fresh, rig.endpoint)
    assert rig.emulator.requests[1].json["thinking"]["type"] == "enabled", "a new user turn may think again"


@pytest.mark.parametrize("streaming", [False, True])
async def test_structured_output_schema_violation_raises(rig: Rig, streaming: bool) -> None:
    rig.emulator.enqueue(cs.json_reply({"name": "Lyon", "population": "many"}))
    with pytest.raises(StructuredOutputError):
        if streaming:
            await collect(rig, ask(response_format=CITY_SCHEMA))
        else:
            await rig.adapter.complete(ask(response_format=CITY_SCHEMA), rig.endpoint)


async def test_refusal_is_a_content_filter_result(rig: Rig) -> None:
    rig.emulator.enqueue(cs.refusal("I can't help with that."))
    response = await rig.adapter.complete(ask(), rig.endpoint)
    assert response.finish_reason is FinishReason.CONTENT_FILTER
    assert response.refusal == "This request could enable cyber harm."
    rig.emulator.enqueue(cs.refusal("I can't help with that."))
    events = await collect(rig, ask())
    assert isinstance(events[-1], Finish) and events[-1].reason is FinishReason.CONTENT_FILTER


ERROR_MATRIX = [
    ("invalid_request", ErrorClass.INVALID_REQUEST, 400),
    ("context_length", ErrorClass.CONTEXT_LENGTH, 400),
    ("credit_balance", ErrorClass.QUOTA_EXHAUSTED, 400),
    ("auth", ErrorClass.AUTH, 401),
    ("billing", ErrorClass.QUOTA_EXHAUSTED, 402),
    ("permission", ErrorClass.PERMISSION, 403),
    ("not_found", ErrorClass.NOT_FOUND, 404),
    ("timeout", ErrorClass.TIMEOUT, 408),
    ("request_too_large", ErrorClass.INVALID_REQUEST, 413),
    ("request_too_large_edge", ErrorClass.INVALID_REQUEST, 413),
    ("rate_limit", ErrorClass.RATE_LIMIT, 429),
    ("spend_limit", ErrorClass.QUOTA_EXHAUSTED, 429),
    ("server_error", ErrorClass.SERVER_ERROR, 500),
    ("gateway_timeout", ErrorClass.TIMEOUT, 504),
    ("overloaded", ErrorClass.OVERLOADED, 529),
]


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize(("fixture", "error_class", "status"), ERROR_MATRIX)
async def test_http_errors_map_to_classes(
    rig: Rig, fixture: str, error_class: ErrorClass, status: int, streaming: bool
) -> None:
    rig.emulator.enqueue(cs.error(fixture))
    with pytest.raises(ProviderError) as caught:
        if streaming:
            await collect(rig, ask())
        else:
            await rig.adapter.complete(ask(), rig.endpoint)
    error = caught.value
    assert (error.error_class, error.status) == (error_class, status)
    assert error.request_id == "req_011CVEmulator0000000001"
    assert error.retry_after == (7.0 if fixture == "rate_limit" else None)


async def test_invalid_key_is_auth_and_never_echoed(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rig.emulator.enqueue(cs.error("auth_echo"))
    with pytest.raises(ProviderError) as caught:
        await rig.adapter.complete(ask(), rig.endpoint)
    error = caught.value
    assert error.error_class is ErrorClass.AUTH
    assert "invalid x-api-key" in error.message
    for rendered in (str(error), repr(error), error.message, caplog.text):
        assert CANARY not in rendered
        assert "CANARY" not in rendered


@pytest.mark.parametrize(
    ("fixture", "error_class"), [("overloaded", ErrorClass.OVERLOADED), ("rate_limit", ErrorClass.RATE_LIMIT)]
)
async def test_error_event_after_http_200(rig: Rig, fixture: str, error_class: ErrorClass) -> None:
    rig.emulator.enqueue(cs.stream_error(fixture, after=4))
    seen: list[StreamEvent] = []
    with pytest.raises(ProviderError) as caught:
        async for event in rig.adapter.stream(ask(), rig.endpoint):
            seen.append(event)
    assert caught.value.error_class is error_class
    assert caught.value.status is None
    assert text_of(seen)
    assert not any(isinstance(e, Finish) for e in seen)


@pytest.mark.parametrize("cut", [cs.drop_after, cs.truncate_after])
async def test_stream_without_message_stop_is_network(rig: Rig, cut: Callable[..., cs.ChatScenario]) -> None:
    rig.emulator.enqueue(cut(5, cs.text("A long answer that will be cut off", pieces=8)))
    seen: list[StreamEvent] = []
    with pytest.raises(ProviderError) as caught:
        async for event in rig.adapter.stream(ask(), rig.endpoint):
            seen.append(event)
    assert caught.value.error_class is ErrorClass.NETWORK
    assert text_of(seen)


async def test_connection_dropped_mid_body_is_network(rig: Rig) -> None:
    rig.emulator.enqueue(cs.drop_after(1))
    with pytest.raises(ProviderError) as caught:
        await rig.adapter.complete(ask(), rig.endpoint)
    assert caught.value.error_class is ErrorClass.NETWORK


async def test_malformed_sse_data_is_a_server_error(rig: Rig) -> None:
    rig.emulator.enqueue(cs.malformed(after=3))
    with pytest.raises(ProviderError) as caught:
        await collect(rig, ask())
    assert caught.value.error_class is ErrorClass.SERVER_ERROR


@pytest.mark.parametrize("streaming", [False, True])
async def test_slow_first_byte_times_out_and_closes_upstream(
    served: tuple[AnthropicEmulator, str], clients: UpstreamClients, streaming: bool
) -> None:
    rig = make_rig(served, clients, timeouts=Timeouts(first_byte=0.2))
    await chat_rig.check_slow_first_byte_times_out(rig, ask(), streaming=streaming)


async def test_stall_mid_stream_times_out_after_output(
    served: tuple[AnthropicEmulator, str], clients: UpstreamClients
) -> None:
    rig = make_rig(served, clients, timeouts=Timeouts(between_chunks=0.2))
    stall = cs.stall_after(4, cs.text("This answer stalls halfway through.", pieces=6))
    await chat_rig.check_stall_times_out_after_output(rig, ask(), stall)


@pytest.mark.parametrize("backend", ["aiohttp", "httpx"])
async def test_cancelled_stream_closes_upstream(
    served: tuple[AnthropicEmulator, str], backend: Backend
) -> None:
    async with UpstreamClients(backend=backend) as pool:
        stall = cs.stall_after(4, cs.text("An answer the caller abandons.", pieces=6))
        await chat_rig.check_cancel_closes_upstream(make_rig(served, pool), ask(), stall)


async def test_audio_input_fails_before_any_request(rig: Rig) -> None:
    request = ChatRequest(
        model=MODEL, messages=(Message(Role.USER, (AudioPart(data_b64="AAAA", format="wav"),)),)
    )
    with pytest.raises(ProviderError) as caught:
        await rig.adapter.complete(request, rig.endpoint)
    assert caught.value.error_class is ErrorClass.INVALID_REQUEST
    assert rig.emulator.requests == []
    assert rig.key.purposes == []
