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
from tests.emulators.openai_errors import ERRORS

FLAVORS: list[Flavor] = ["openai", "openrouter", "mistral", "kimi", "xai", "compat"]

# (model class, field) pairs a vendor really sends beyond OpenAI's schema.
VENDOR_EXTRAS: dict[Flavor, set[tuple[str, str]]] = {
    "openrouter": {
        ("ChatCompletion", "provider"),
        ("ChatCompletionChunk", "provider"),
        ("Choice", "native_finish_reason"),
        ("CompletionUsage", "cost"),
        ("CompletionUsage", "cost_details"),
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
