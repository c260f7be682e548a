"""The gemini-generate adapter over real loopback HTTP against the Gemini emulator."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from providers.adapters.gemini_generate import GeminiGenerateAdapter
from providers.contract import PRESETS, ErrorClass, ProviderId
from providers.errors import ProviderError, StructuredOutputError
from providers.http import Timeouts
from providers.types import (
    ChatRequest,
    Finish,
    FinishReason,
    JsonObjectFormat,
    Message,
    Role,
    StreamEvent,
    TextPart,
    ToolCallDone,
    ToolCallStart,
    UsageUpdate,
)
from providers.upstream_pool import Backend, UpstreamClients
from tests.emulators import chat_scenarios as cs
from tests.emulators.gemini import GeminiEmulator
from tests.providers import chat_rig
from tests.providers.chat_rig import CITY_SCHEMA, WEATHER, collect, text_of

CANARY = "AIzaSyCANARY-0123456789abcdefghijklmnopq"
MODEL = "gemini-2.5-flash"


Rig = chat_rig.Rig[GeminiEmulator]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[GeminiEmulator, str]]:
    yield from chat_rig.serve(GeminiEmulator(api_key=CANARY))


@pytest.fixture
def served(server: tuple[GeminiEmulator, str]) -> tuple[GeminiEmulator, str]:
    server[0].reset()
    return server


@pytest.fixture
async def clients() -> AsyncIterator[UpstreamClients]:
    async with UpstreamClients() as pool:
        yield pool


def make_rig(
    served: tuple[GeminiEmulator, str], clients: UpstreamClients, *, key: str = CANARY, **kwargs: object
) -> Rig:
    adapter = GeminiGenerateAdapter(clients, **kwargs)
    return chat_rig.make_rig(served, adapter, PRESETS[ProviderId.GEMINI], key, "gemini:test")


@pytest.fixture
def rig(served: tuple[GeminiEmulator, str], clients: UpstreamClients) -> Rig:
    return make_rig(served, clients)


def ask(text: str = "Hello", **kwargs: object) -> ChatRequest:
    return ChatRequest(model=MODEL, messages=(Message(Role.USER, (TextPart(text),)),), **kwargs)


async def test_complete_text_uses_key_header_and_path(rig: Rig) -> None:
    rig.emulator.enqueue(cs.text("Bonjour, Paris!"))
    response = await rig.adapter.complete(ask(temperature=0.3, max_output_tokens=64), rig.endpoint)
    assert response.text == "Bonjour, Paris!"
    assert response.finish_reason is FinishReason.STOP
    assert response.model == MODEL
    (sent,) = rig.emulator.requests
    assert sent.path == f"/v1beta/models/{MODEL}:generateContent"
    assert sent.headers["x-goog-api-key"] == CANARY
    assert "key" not in sent.query
    assert sent.json["generationConfig"] == {"maxOutputTokens": 64, "temperature": 0.3}
    assert rig.key.purposes == ["chat"]


async def test_usage_counts_thoughts_as_output_and_omitted_fields_as_zero(rig: Rig) -> None:
    rig.emulator.enqueue(
        cs.text("ok", usage={"promptTokenCount": 20, "candidatesTokenCount": 5, "thoughtsTokenCount": 7})
    )
    usage = (await rig.adapter.complete(ask(), rig.endpoint)).usage
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens, usage.cached_input_tokens) == (
        20,
        12,
        7,
        0,
    )


@pytest.mark.parametrize("fragment", [None, 11])
async def test_stream_text_crlf_and_last_usage(rig: Rig, fragment: int | None) -> None:
    answer = "Streaming works, even with ünïcödé split across chunks."
    rig.emulator.enqueue(
        cs.ChatScenario(text=answer, pieces=5, fragment_bytes=fragment, usage={"cachedContentTokenCount": 3})
    )
    events = await collect(rig, ask())
    assert text_of(events) == answer
    assert isinstance(events[-1], Finish) and events[-1].reason is FinishReason.STOP
    (usage,) = [e.usage for e in events if isinstance(e, UsageUpdate)]
    assert usage.cached_input_tokens == 3 and usage.output_tokens > 0
    sent = rig.emulator.requests[0]
    assert sent.path.endswith(":streamGenerateContent") and sent.query == {"alt": "sse"}


async def test_parallel_tool_calls_complete_and_stream_agree(rig: Rig) -> None:
    calls = (("get_weather", {"city": "Paris"}), ("get_time", {}))
    rig.emulator.enqueue(cs.tool_calls(*calls), cs.tool_calls(*calls))
    response = await rig.adapter.complete(ask(tools=(WEATHER,), tool_choice="required"), rig.endpoint)
    assert response.finish_reason is FinishReason.TOOL_CALLS
    assert [(c.name, c.parsed_arguments()) for c in response.tool_calls] == [(n, a) for n, a in calls]
    assert len({c.id for c in response.tool_calls}) == 2
    events = await collect(rig, ask(tools=(WEATHER,)))
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    done = [e.call for e in events if isinstance(e, ToolCallDone)]
    assert [s.index for s in starts] == [0, 1]
    assert [c.id for c in done] == [c.id for c in response.tool_calls]
    assert isinstance(events[-1], Finish) and events[-1].reason is FinishReason.TOOL_CALLS
    sent = rig.emulator.requests[0].json
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert sent["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"] == WEATHER.parameters


@pytest.mark.parametrize("streaming", [False, True])
async def test_structured_output_is_validated(rig: Rig, streaming: bool) -> None:
    rig.emulator.enqueue(cs.json_reply({"name": "Paris", "population": 2102650}))
    if streaming:
        events = await collect(rig, ask(response_format=CITY_SCHEMA))
        assert json.loads(text_of(events)) == {"name": "Paris", "population": 2102650}
    else:
        response = await rig.adapter.complete(ask(response_format=CITY_SCHEMA), rig.endpoint)
        assert response.parsed == {"name": "Paris", "population": 2102650}
    config = rig.emulator.requests[0].json["generationConfig"]
    assert config == {"responseMimeType": "application/json", "responseJsonSchema": CITY_SCHEMA.schema}


@pytest.mark.parametrize("streaming", [False, True])
async def test_structured_output_violation_raises(rig: Rig, streaming: bool) -> None:
    rig.emulator.enqueue(cs.json_reply(["not", "an", "object"]))
    with pytest.raises(StructuredOutputError):
        if streaming:
            await collect(rig, ask(response_format=JsonObjectFormat()))
        else:
            await rig.adapter.complete(ask(response_format=JsonObjectFormat()), rig.endpoint)


async def test_safety_finish_is_content_filter(rig: Rig) -> None:
    rig.emulator.enqueue(cs.refusal(), cs.refusal())
    response = await rig.adapter.complete(ask(), rig.endpoint)
    assert response.finish_reason is FinishReason.CONTENT_FILTER
    assert response.refusal is not None and "SAFETY" in response.refusal
    events = await collect(rig, ask())
    assert isinstance(events[-1], Finish) and events[-1].reason is FinishReason.CONTENT_FILTER


async def test_blocked_prompt_is_a_content_filter_result(rig: Rig) -> None:
    rig.emulator.enqueue(cs.prompt_blocked("PROHIBITED_CONTENT"), cs.prompt_blocked("PROHIBITED_CONTENT"))
    response = await rig.adapter.complete(ask(), rig.endpoint)
    assert response.finish_reason is FinishReason.CONTENT_FILTER
    assert response.text == "" and response.refusal is not None and "PROHIBITED_CONTENT" in response.refusal
    events = await collect(rig, ask())
    assert not text_of(events)
    assert isinstance(events[-1], Finish) and events[-1].reason is FinishReason.CONTENT_FILTER


ERROR_MATRIX = [
    ("auth", ErrorClass.AUTH, 400),
    ("unauthenticated", ErrorClass.PERMISSION, 403),
    ("invalid_request", ErrorClass.INVALID_REQUEST, 400),
    ("context_length", ErrorClass.CONTEXT_LENGTH, 400),
    ("failed_precondition", ErrorClass.QUOTA_EXHAUSTED, 400),
    ("permission", ErrorClass.PERMISSION, 403),
    ("not_found", ErrorClass.NOT_FOUND, 404),
    ("rate_limit", ErrorClass.RATE_LIMIT, 429),
    ("quota_zero", ErrorClass.QUOTA_EXHAUSTED, 429),
    ("daily_quota", ErrorClass.QUOTA_EXHAUSTED, 429),
    ("server_error", ErrorClass.SERVER_ERROR, 500),
    ("overloaded", ErrorClass.OVERLOADED, 503),
    ("timeout", ErrorClass.TIMEOUT, 504),
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
    assert error.retry_after == (46.0 if fixture == "rate_limit" else None)
    assert error.request_id == "emu-0001"


async def test_wrong_key_is_auth_and_never_echoed(
    served: tuple[GeminiEmulator, str], clients: UpstreamClients, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "AIzaSyWRONG-CANARY-9876543210zyxwvutsrqp"
    rig = make_rig(served, clients, key=wrong)
    with pytest.raises(ProviderError) as caught:
        await rig.adapter.complete(ask(), rig.endpoint)
    assert caught.value.error_class is ErrorClass.AUTH
    for rendered in (str(caught.value), repr(caught.value), caplog.text):
        assert wrong not in rendered


@pytest.mark.parametrize("fixture", ["overloaded", "rate_limit"])
async def test_error_chunk_after_http_200(rig: Rig, fixture: str) -> None:
    rig.emulator.enqueue(cs.stream_error(fixture, after=2))
    seen: list[StreamEvent] = []
    with pytest.raises(ProviderError) as caught:
        async for event in rig.adapter.stream(ask(), rig.endpoint):
            seen.append(event)
    assert (
        caught.value.error_class
        is {"overloaded": ErrorClass.OVERLOADED, "rate_limit": ErrorClass.RATE_LIMIT}[fixture]
    )
    assert text_of(seen) and not any(isinstance(e, Finish) for e in seen)


@pytest.mark.parametrize("cut", [cs.drop_after, cs.truncate_after])
async def test_stream_closed_before_finish_is_network(rig: Rig, cut: Callable[..., cs.ChatScenario]) -> None:
    rig.emulator.enqueue(cut(2, cs.text("A long answer that will be cut off", pieces=6)))
    seen: list[StreamEvent] = []
    with pytest.raises(ProviderError) as caught:
        async for event in rig.adapter.stream(ask(), rig.endpoint):
            seen.append(event)
    assert caught.value.error_class is ErrorClass.NETWORK
    assert text_of(seen)


async def test_malformed_chunk_is_a_server_error(rig: Rig) -> None:
    rig.emulator.enqueue(cs.malformed(after=1))
    with pytest.raises(ProviderError) as caught:
        await collect(rig, ask())
    assert caught.value.error_class is ErrorClass.SERVER_ERROR


@pytest.mark.parametrize("streaming", [False, True])
async def test_slow_first_byte_times_out_and_closes_upstream(
    served: tuple[GeminiEmulator, str], clients: UpstreamClients, streaming: bool
) -> None:
    rig = make_rig(served, clients, timeouts=Timeouts(first_byte=0.2))
    await chat_rig.check_slow_first_byte_times_out(rig, ask(), streaming=streaming)


async def test_stall_mid_stream_times_out_after_output(
    served: tuple[GeminiEmulator, str], clients: UpstreamClients
) -> None:
    rig = make_rig(served, clients, timeouts=Timeouts(between_chunks=0.2))
    stall = cs.stall_after(2, cs.text("This answer stalls halfway through.", pieces=5))
    await chat_rig.check_stall_times_out_after_output(rig, ask(), stall)


@pytest.mark.parametrize("backend", ["aiohttp", "httpx"])
async def test_cancelled_stream_closes_upstream(served: tuple[GeminiEmulator, str], backend: Backend) -> None:
    async with UpstreamClients(backend=backend) as pool:
        stall = cs.stall_after(2, cs.text("An answer the caller abandons.", pieces=5))
        await chat_rig.check_cancel_closes_upstream(make_rig(served, pool), ask(), stall)


async def test_unknown_tool_call_id_fails_before_any_request(rig: Rig) -> None:
    request = ChatRequest(
        model=MODEL,
        messages=(
            Message(Role.USER, (TextPart("hi"),)),
            Message(Role.TOOL, (TextPart("{}"),), tool_call_id="call_x"),
        ),
    )
    with pytest.raises(ProviderError) as caught:
        await rig.adapter.complete(request, rig.endpoint)
    assert caught.value.error_class is ErrorClass.INVALID_REQUEST
    assert rig.emulator.requests == []
