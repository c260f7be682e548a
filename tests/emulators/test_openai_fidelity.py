"""The OpenAI emulator speaks the real wire: every JSON it emits validates against the official
SDK's models with no unknown fields, except the extras OpenRouter and Kimi really send, which
are checked on their own; and the official `openai` client works against it unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel

from providers.sse import SSEDecoder
from tests.emulators import openrouter_reasoning
from tests.emulators.anthropic import thinking_signature
from tests.emulators.harness import ServedApp
from tests.emulators.openai import (
    Flavor,
    OpenAIEmulator,
    Scenario,
    Wire,
    json_reply,
    refusal,
    text,
    tool_calls,
)
from tests.emulators.openai_errors import ERRORS, openrouter_body

FLAVORS: list[Flavor] = ["openai", "openrouter", "mistral", "kimi", "xai", "compat"]

# (model class, field) pairs a vendor really sends beyond OpenAI's schema.
VENDOR_EXTRAS: dict[Flavor, set[tuple[str, str]]] = {
    "openrouter": {
        ("ChatCompletion", "provider"),
        ("ChatCompletionChunk", "provider"),
        ("Choice", "native_finish_reason"),
        ("CompletionUsage", "cost"),
        ("CompletionUsage", "cost_details"),
        ("ChatCompletionMessage", "reasoning"),
        ("ChatCompletionMessage", "reasoning_details"),
        ("ChoiceDelta", "reasoning"),
        ("ChoiceDelta", "reasoning_details"),
    },
    "kimi": {("Choice", "usage")},
}

SCENARIOS = {
    "text": text("The quick brown fox jumps over the extraordinarily lazy dog."),
    "tools": tool_calls(("get_weather", {"city": "Paris"}), ("get_time", {"tz": "UTC"})),
    "refusal": refusal(),
    "json": json_reply({"city": "Paris", "temp_c": 21}),
    "usage_details": Scenario(prompt_tokens=100, completion_tokens=20, cached_tokens=64, reasoning_tokens=8),
}
REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def extras(model: BaseModel) -> Iterator[tuple[str, str, Any]]:
    """Every unknown field anywhere in the model tree, as (class, field, value)."""
    for name, value in (model.model_extra or {}).items():
        yield type(model).__name__, name, value
    for name in type(model).model_fields:
        yield from _extras_in(getattr(model, name))


def _extras_in(value: Any) -> Iterator[tuple[str, str, Any]]:
    if isinstance(value, BaseModel):
        yield from extras(value)
    elif isinstance(value, list):
        for item in value:
            yield from _extras_in(item)


def check_vendor_extra(flavor: Flavor, cls: str, name: str, value: Any) -> None:
    assert (cls, name) in VENDOR_EXTRAS.get(flavor, set()), f"unknown field {cls}.{name} in {flavor} output"
    if name == "cost":
        assert isinstance(value, float) and value >= 0
    elif name == "provider":
        assert isinstance(value, str) and value
    elif name == "native_finish_reason":
        assert value in {"stop", "tool_calls", "length", "content_filter", "error"}
    elif name == "usage":
        CompletionUsage.model_validate(value)
    elif name == "cost_details":
        assert set(value) == {"upstream_inference_cost"}
    elif name == "reasoning":
        assert isinstance(value, str) and value
    elif name == "reasoning_details":
        for entry in value:
            check_reasoning_detail(entry)


def check_reasoning_detail(entry: dict[str, Any]) -> None:
    """An entry (or a streamed piece of one) in OpenRouter's documented shape."""
    kind = entry["type"]
    assert kind in openrouter_reasoning.TYPES and entry["format"] in openrouter_reasoning.FORMATS
    assert isinstance(entry["index"], int) and "id" in entry
    field = {"reasoning.text": "text", "reasoning.summary": "summary", "reasoning.encrypted": "data"}[kind]
    assert isinstance(entry[field], str)
    allowed = {"type", "id", "format", "index", field} | (
        {"signature"} if kind == "reasoning.text" else set()
    )
    assert set(entry) <= allowed


def assert_faithful(flavor: Flavor, model: BaseModel) -> None:
    for cls, name, value in extras(model):
        check_vendor_extra(flavor, cls, name, value)


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("flavor", FLAVORS)
def test_completion_validates(flavor: Flavor, scenario: str) -> None:
    body = Wire(flavor).completion(SCENARIOS[scenario], REQUEST, "gpt-4o-mini")
    assert_faithful(flavor, ChatCompletion.model_validate(body))


@pytest.mark.parametrize("include_usage", [False, True])
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("flavor", FLAVORS)
def test_every_chunk_validates(flavor: Flavor, scenario: str, include_usage: bool) -> None:
    request = REQUEST | {"stream": True, "stream_options": {"include_usage": include_usage}}
    chunks = Wire(flavor).chunks(SCENARIOS[scenario], request, "gpt-4o-mini")
    for chunk in chunks:
        assert_faithful(flavor, ChatCompletionChunk.model_validate(chunk))
    has_usage = any(c.get("usage") or any(ch.get("usage") for ch in c["choices"]) for c in chunks)
    assert has_usage == (include_usage or flavor in ("openrouter", "mistral", "kimi"))


def test_model_extra_walk_catches_typos() -> None:
    body = Wire("openai").completion(SCENARIOS["text"], REQUEST, "m")
    body["choices"][0]["message"]["contnet"] = "typo"
    found = list(extras(ChatCompletion.model_validate(body)))
    assert [(c, n) for c, n, _ in found] == [("ChatCompletionMessage", "contnet")]


@pytest.mark.parametrize("flavor", ["openai", "openrouter"])
def test_stream_error_chunks(flavor: Flavor) -> None:
    chunk = Wire(flavor).stream_error_chunk(Scenario(stream_error={"code": 502, "message": "down"}), "m")
    assert chunk["error"] == {"code": 502, "message": "down"}
    if flavor == "openrouter":
        # finish_reason "error" is OpenRouter's own value, outside the OpenAI Literal.
        assert chunk["choices"][0]["finish_reason"] == "error"
        chunk["choices"][0]["finish_reason"] = None
        rest = {k: v for k, v in chunk.items() if k != "error"}
        assert_faithful(flavor, ChatCompletionChunk.model_validate(rest))


@pytest.fixture(scope="module")
def served() -> Iterator[dict[Flavor, tuple[OpenAIEmulator, str]]]:
    out = {}
    servers = []
    for flavor in FLAVORS:
        emu = OpenAIEmulator(flavor)
        server = ServedApp(emu).start()
        servers.append(server)
        out[flavor] = (emu, server.url + ("/api/v1" if flavor == "openrouter" else "/v1"))
    yield out
    for server in servers:
        server.stop()


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_framed_stream_over_http(
    served: dict[Flavor, tuple[OpenAIEmulator, str]], flavor: Flavor
) -> None:
    emu, base = served[flavor]
    emu.reset()
    emu.enqueue(SCENARIOS["tools"])
    decoder = SSEDecoder()
    raw = b""
    async with httpx.AsyncClient() as client:
        reply = await client.post(base + "/chat/completions", json=REQUEST | {"stream": True})
        raw = reply.content
    assert reply.headers["content-type"] == "text/event-stream"
    events = decoder.feed(raw) + decoder.end()
    assert events[-1].data == "[DONE]"
    for event in events[:-1]:
        assert_faithful(flavor, ChatCompletionChunk.model_validate_json(event.data))
    assert (raw.count(b": OPENROUTER PROCESSING") > 0) == (flavor == "openrouter")


def sdk(base: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base, api_key="sk-test-sdk", max_retries=0)


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_sdk_non_streaming(served: dict[Flavor, tuple[OpenAIEmulator, str]], flavor: Flavor) -> None:
    emu, base = served[flavor]
    emu.reset()
    emu.enqueue(text("Hello from the emulator."))
    async with sdk(base) as client:
        completion = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        models = await client.models.list()
    assert completion.choices[0].message.content == "Hello from the emulator."
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert [m.id for m in models.data] == list(emu.models)
    assert emu.chat_requests[0].headers["authorization"] == "Bearer sk-test-sdk"


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_sdk_streaming_tool_calls(
    served: dict[Flavor, tuple[OpenAIEmulator, str]], flavor: Flavor
) -> None:
    emu, base = served[flavor]
    emu.reset()
    emu.enqueue(tool_calls(("get_weather", {"city": "Paris"}), ("get_time", {"tz": "UTC"})))
    args: dict[int, str] = {}
    names: dict[int, str] = {}
    finish = None
    usage = None
    async with sdk(base) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "weather and time"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            usage = chunk.usage or usage
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                for call in choice.delta.tool_calls or []:
                    if call.function and call.function.name:
                        names[call.index] = call.function.name
                    args[call.index] = args.get(call.index, "") + (
                        (call.function and call.function.arguments) or ""
                    )
    assert names == {0: "get_weather", 1: "get_time"}
    assert args == {0: '{"city":"Paris"}', 1: '{"tz":"UTC"}'}
    assert finish == "tool_calls"
    if flavor != "kimi":  # Kimi puts usage inside the choice, which the SDK keeps as an extra
        assert usage is not None


@pytest.mark.parametrize(
    "flavor,kind,error_type",
    [
        ("openai", "rate_limit", openai.RateLimitError),
        ("openai", "quota_exhausted", openai.RateLimitError),
        ("openai", "auth", openai.AuthenticationError),
        ("openai", "permission", openai.PermissionDeniedError),
        ("openai", "not_found", openai.NotFoundError),
        ("openai", "context_length", openai.BadRequestError),
        ("openai", "server_error", openai.InternalServerError),
        ("openai", "overloaded", openai.InternalServerError),
        ("openrouter", "quota_exhausted", openai.APIStatusError),
        ("openrouter", "rate_limit", openai.RateLimitError),
        ("mistral", "invalid_request", openai.UnprocessableEntityError),
        ("xai", "auth", openai.BadRequestError),
        ("kimi", "overloaded", openai.RateLimitError),
    ],
)
async def test_sdk_error_types(
    served: dict[Flavor, tuple[OpenAIEmulator, str]], flavor: Flavor, kind: str, error_type: type[Exception]
) -> None:
    emu, base = served[flavor]
    emu.reset()
    scenario = ERRORS[flavor][kind]
    emu.enqueue(scenario)
    async with sdk(base) as client:
        with pytest.raises(error_type) as info:
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
    err = info.value
    assert isinstance(err, openai.APIStatusError)
    assert err.status_code == scenario.status
    assert err.response.headers.get("retry-after") == scenario.headers.get("retry-after")
    assert err.request_id is not None


async def test_sdk_raises_on_in_stream_error(served: dict[Flavor, tuple[OpenAIEmulator, str]]) -> None:
    emu, base = served["openai"]
    emu.reset()
    emu.enqueue(
        Scenario(error_after=3, stream_error={"message": "The server had an error", "type": "server_error"})
    )
    got = ""
    async with sdk(base) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with pytest.raises(openai.APIError, match="The server had an error"):
            async for chunk in stream:
                got += "".join(c.delta.content or "" for c in chunk.choices)
    assert got


def test_scripting_precedence() -> None:
    emu = OpenAIEmulator(default=text("default"))
    emu.always(text("sticky-any"))
    emu.always(text("sticky-m"), model="m")
    emu.enqueue(text("queued-any"))
    emu.enqueue(text("queued-m1"), text("queued-m2"), model="m")
    order = [emu._next("m").text for _ in range(4)] + [emu._next("other").text for _ in range(2)]
    assert order == ["queued-m1", "queued-m2", "queued-any", "sticky-m", "sticky-any", "sticky-any"]
    emu.reset()
    assert emu._next("m").text == "default"


async def test_fast_path_sends_the_same_stream() -> None:
    bodies = []
    for fast in (False, True):
        emu = OpenAIEmulator("openrouter", fast=fast)
        emu.enqueue(SCENARIOS["tools"])
        with ServedApp(emu) as server:
            async with httpx.AsyncClient() as client:
                reply = await client.post(
                    server.url + "/api/v1/chat/completions", json=REQUEST | {"stream": True}
                )
        bodies.append(reply.content)
    # Ids come from a per-instance counter, so two fresh emulators emit identical bytes.
    assert bodies[0] == bodies[1]
    assert bodies[0].endswith(b"data: [DONE]\n\n")


REASONING_MODELS = [
    "anthropic/claude-sonnet-4.5",
    "openai/gpt-5",
    "google/gemini-3-pro-preview",
    "qwen/qwq-32b",
]
THINKING_REQUEST = REQUEST | {"reasoning_effort": "low"}


@pytest.mark.parametrize("model", REASONING_MODELS)
def test_openrouter_reasoning_validates(model: str) -> None:
    """Asked to reason, OpenRouter sends `reasoning` and `reasoning_details`, whole and in pieces."""
    wire = Wire("openrouter")
    scenario = SCENARIOS["tools"]
    completion = ChatCompletion.model_validate(
        wire.completion(scenario, THINKING_REQUEST | {"model": model}, model)
    )
    assert_faithful("openrouter", completion)
    message = completion.choices[0].message.model_extra or {}
    assert message["reasoning"] == openrouter_reasoning.DEFAULT_REASONING
    chunks = [
        ChatCompletionChunk.model_validate(c)
        for c in wire.chunks(scenario, THINKING_REQUEST | {"model": model, "stream": True}, model)
    ]
    for chunk in chunks:
        assert_faithful("openrouter", chunk)
    deltas = [c.choices[0].delta.model_extra or {} for c in chunks if c.choices]
    pieces = [p for d in deltas for p in d.get("reasoning_details") or []]
    assert "".join(d.get("reasoning") or "" for d in deltas) == message["reasoning"]
    assert len(pieces) > len(message["reasoning_details"])
    assert sorted({p["index"] for p in pieces}) == [e["index"] for e in message["reasoning_details"]]
    # Only the reasoning comes first: no content or tool call before the last piece.
    last = max(i for i, d in enumerate(deltas) if "reasoning_details" in d)
    assert all(not c.choices[0].delta.tool_calls for c in chunks[: last + 1] if c.choices)


def test_openrouter_sends_no_reasoning_unasked() -> None:
    wire = Wire("openrouter")
    for request in (
        REQUEST,
        REQUEST | {"reasoning_effort": "none"},
        REQUEST | {"reasoning": {"enabled": False}},
    ):
        body = wire.completion(SCENARIOS["text"], request, "anthropic/claude-sonnet-4.5")
        assert "reasoning_details" not in body["choices"][0]["message"]
    asked = REQUEST | {"reasoning": {"max_tokens": 2000}}
    body = wire.completion(SCENARIOS["text"], asked, "anthropic/claude-sonnet-4.5")
    entry = body["choices"][0]["message"]["reasoning_details"][0]
    assert entry["signature"] == thinking_signature(entry["text"])


async def test_openrouter_anthropic_refuses_a_tool_loop_without_its_details(
    served: dict[Flavor, tuple[OpenAIEmulator, str]],
) -> None:
    """The SDK's `model_dump()` of the assistant message carries the details back; dropped or
    altered, OpenRouter relays Anthropic's 400 in its own error body."""
    emu, base = served["openrouter"]
    emu.reset()
    emu.enqueue(tool_calls(("get_weather", {"city": "Paris"})), text("Sunny."))
    model = "anthropic/claude-sonnet-4.5"
    ask: list[Any] = [{"role": "user", "content": "weather in Paris?"}]
    async with sdk(base) as client:
        first = await client.chat.completions.create(model=model, messages=ask, reasoning_effort="low")
        message = first.choices[0].message
        results = [
            {"role": "tool", "tool_call_id": c.id, "content": "sunny"} for c in message.tool_calls or ()
        ]
        details = (message.model_extra or {})["reasoning_details"]
        altered = message.model_dump() | {"reasoning_details": [details[0] | {"text": "Other thoughts."}]}
        for broken, why in (
            (message.model_dump(exclude={"reasoning_details"}), "Expected `thinking` or `redacted_thinking`"),
            (altered, "Invalid `signature` in `thinking` block"),
        ):
            with pytest.raises(openai.BadRequestError) as info:
                await client.chat.completions.create(
                    model=model, messages=[*ask, broken, *results], reasoning_effort="low"
                )
            body = info.value.response.json()
            assert body == openrouter_body(400, "Provider returned error", body["error"]["metadata"])
            assert body["error"]["metadata"]["provider_name"] == "Anthropic"
            assert why in body["error"]["metadata"]["raw"]
        second = await client.chat.completions.create(
            model=model, messages=[*ask, message.model_dump(), *results], reasoning_effort="low"
        )
    assert second.choices[0].message.content == "Sunny."
    # Without reasoning asked for, Anthropic does not check the history.
    emu.enqueue(text("Sunny."))
    async with sdk(base) as client:
        plain = await client.chat.completions.create(
            model=model, messages=[*ask, message.model_dump(exclude={"reasoning_details"}), *results]
        )
    assert plain.choices[0].message.content == "Sunny."
