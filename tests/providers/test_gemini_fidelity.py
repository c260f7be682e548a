"""The Gemini emulator speaks the real wire: every JSON it sends validates against the
official `google-genai` types with no unknown fields, and the official client works against it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types

from providers.sse import SSEDecoder
from tests.emulators import chat_scenarios as cs
from tests.emulators.gemini import ERRORS, GeminiEmulator
from tests.emulators.scripted import assert_no_extra
from tests.providers.chat_rig import serve

KEY = "AIzaSy-fidelity-0000000000000000000000"
MODEL = "gemini-2.5-flash"
GENERATE = f"/v1beta/models/{MODEL}:generateContent"
STREAM = f"/v1beta/models/{MODEL}:streamGenerateContent"
REQUEST = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}

SCENARIOS = {
    "text": cs.text("Hello there, this is a realistic answer.", pieces=5),
    "tools": cs.tool_calls(("get_weather", {"city": "Paris", "days": 3}), ("get_time", {}), text="Checking."),
    "json": cs.json_reply({"name": "Paris", "population": 2102650}),
    "safety": cs.refusal(),
    "prompt_blocked": cs.prompt_blocked("PROHIBITED_CONTENT"),
    "thinking_usage": cs.text("thought", usage={"thoughtsTokenCount": 42, "cachedContentTokenCount": 8}),
    "max_tokens": cs.ChatScenario(text="cut", stop_reason="MAX_TOKENS"),
    "malformed_call": cs.ChatScenario(text=None, stop_reason="MALFORMED_FUNCTION_CALL"),
}


def assert_zero_usage_omitted(wire: dict[str, Any]) -> None:
    usage = wire.get("usageMetadata", {})
    assert all(v != 0 for v in usage.values() if isinstance(v, int)), usage


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[GeminiEmulator, str]]:
    yield from serve(GeminiEmulator(api_key=KEY))


@pytest.fixture
def emulator(server: tuple[GeminiEmulator, str]) -> GeminiEmulator:
    server[0].reset()
    return server[0]


@pytest.fixture
def url(server: tuple[GeminiEmulator, str]) -> str:
    return server[1]


@pytest.fixture
async def raw(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url, headers={"x-goog-api-key": KEY}) as client:
        yield client


@pytest.fixture
async def sdk(url: str) -> AsyncIterator[genai.Client]:
    # An explicit httpx client keeps the SDK off its aiohttp path, whose session subclass
    # trips a DeprecationWarning (warnings are errors here); retries off so errors surface.
    async with httpx.AsyncClient() as transport:
        options = types.HttpOptions(
            base_url=url,
            api_version="v1beta",
            httpx_async_client=transport,
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        yield genai.Client(api_key=KEY, http_options=options)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_response_validates_without_unknown_fields(
    emulator: GeminiEmulator, raw: httpx.AsyncClient, name: str
) -> None:
    emulator.enqueue(SCENARIOS[name])
    response = await raw.post(GENERATE, json=REQUEST)
    assert response.status_code == 200
    wire = response.json()
    assert_zero_usage_omitted(wire)
    assert_no_extra(types.GenerateContentResponse.model_validate(wire))


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_every_stream_chunk_validates(
    emulator: GeminiEmulator, raw: httpx.AsyncClient, name: str
) -> None:
    emulator.enqueue(SCENARIOS[name])
    body = bytearray()
    async with raw.stream("POST", STREAM, params={"alt": "sse"}, json=REQUEST) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_bytes():
            body += chunk
    assert b"\r\n\r\n" in body and b"[DONE]" not in body
    decoder = SSEDecoder()
    events = decoder.feed(bytes(body)) + decoder.end()
    assert events and all(e.event == "message" for e in events)
    for event in events:
        wire = json.loads(event.data)
        assert_zero_usage_omitted(wire)
        assert_no_extra(types.GenerateContentResponse.model_validate(wire))


async def test_tool_calls_keep_stop_and_arrive_whole(
    emulator: GeminiEmulator, raw: httpx.AsyncClient
) -> None:
    emulator.enqueue(SCENARIOS["tools"])
    response = types.GenerateContentResponse.model_validate((await raw.post(GENERATE, json=REQUEST)).json())
    assert response.candidates and response.candidates[0].finish_reason == types.FinishReason.STOP
    assert [(c.name, c.args) for c in response.function_calls or []] == [
        ("get_weather", {"city": "Paris", "days": 3}),
        ("get_time", {}),
    ]


async def test_array_stream_without_alt_sse(emulator: GeminiEmulator, raw: httpx.AsyncClient) -> None:
    emulator.enqueue(SCENARIOS["text"])
    chunks = (await raw.post(STREAM, json=REQUEST)).json()
    assert isinstance(chunks, list) and len(chunks) > 1
    for chunk in chunks:
        assert_no_extra(types.GenerateContentResponse.model_validate(chunk))


async def test_models_list(raw: httpx.AsyncClient, sdk: genai.Client) -> None:
    for entry in (await raw.get("/v1beta/models")).json()["models"]:
        # The SDK renames this one wire field when it converts a model entry.
        entry["supportedActions"] = entry.pop("supportedGenerationMethods")
        assert_no_extra(types.Model.model_validate(entry))
    models = [m async for m in await sdk.aio.models.list()]
    assert [m.name for m in models] == ["models/gemini-2.5-flash", "models/gemini-2.5-pro"]
    assert all("generateContent" in (m.supported_actions or []) for m in models)


async def test_missing_and_wrong_keys(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        missing = await client.post(GENERATE, json=REQUEST)
        wrong = await client.post(GENERATE, json=REQUEST, headers={"x-goog-api-key": "AIzaSy-wrong"})
        by_query = await client.post(GENERATE, json=REQUEST, params={"key": KEY})
    assert (missing.status_code, missing.json()["error"]["status"]) == (403, "PERMISSION_DENIED")
    assert wrong.status_code == 400
    assert wrong.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert by_query.status_code == 200


async def test_sdk_generates_text_and_function_calls(emulator: GeminiEmulator, sdk: genai.Client) -> None:
    emulator.enqueue(SCENARIOS["tools"])
    response = await sdk.aio.models.generate_content(model=MODEL, contents="hi")
    assert response.text == "Checking."
    assert [(c.name, c.args) for c in response.function_calls or []] == [
        ("get_weather", {"city": "Paris", "days": 3}),
        ("get_time", {}),
    ]
    sent = emulator.requests[0]
    assert sent.path == GENERATE and sent.headers["x-goog-api-key"] == KEY


async def test_sdk_streams_text_and_function_calls(emulator: GeminiEmulator, sdk: genai.Client) -> None:
    emulator.enqueue(SCENARIOS["tools"])
    texts: list[str] = []
    calls: list[types.FunctionCall] = []
    usage: types.GenerateContentResponseUsageMetadata | None = None
    async for chunk in await sdk.aio.models.generate_content_stream(model=MODEL, contents="hi"):
        texts += (
            [p.text for p in (chunk.candidates or [])[0].content.parts or [] if p.text]
            if chunk.candidates
            else []
        )
        calls += chunk.function_calls or []
        usage = chunk.usage_metadata or usage
    assert "".join(texts) == "Checking."
    assert [c.name for c in calls] == ["get_weather", "get_time"]
    assert usage is not None and usage.candidates_token_count
    assert emulator.requests[0].query == {"alt": "sse"}


async def test_sdk_structured_output(emulator: GeminiEmulator, sdk: genai.Client) -> None:
    emulator.enqueue(SCENARIOS["json"])
    config = types.GenerateContentConfig(
        response_mime_type="application/json",
        response_json_schema={"type": "object", "properties": {"name": {"type": "string"}}},
    )
    response = await sdk.aio.models.generate_content(model=MODEL, contents="hi", config=config)
    assert response.parsed == {"name": "Paris", "population": 2102650}


SDK_ERRORS = [
    ("auth", errors.ClientError, 400),
    ("invalid_request", errors.ClientError, 400),
    ("context_length", errors.ClientError, 400),
    ("failed_precondition", errors.ClientError, 400),
    ("permission", errors.ClientError, 403),
    ("not_found", errors.ClientError, 404),
    ("rate_limit", errors.ClientError, 429),
    ("quota_zero", errors.ClientError, 429),
    ("server_error", errors.ServerError, 500),
    ("overloaded", errors.ServerError, 503),
    ("timeout", errors.ServerError, 504),
]


@pytest.mark.parametrize(("name", "error_type", "code"), SDK_ERRORS)
async def test_sdk_raises_typed_errors(
    emulator: GeminiEmulator, sdk: genai.Client, name: str, error_type: type[errors.APIError], code: int
) -> None:
    emulator.enqueue(cs.error(name))
    with pytest.raises(error_type) as caught:
        await sdk.aio.models.generate_content(model=MODEL, contents="hi")
    assert caught.value.code == code
    assert caught.value.status == ERRORS[name].rpc_status


async def test_sdk_raises_on_error_chunk_after_200(emulator: GeminiEmulator, sdk: genai.Client) -> None:
    emulator.enqueue(cs.stream_error("overloaded", after=2))
    with pytest.raises(errors.APIError) as caught:
        async for _ in await sdk.aio.models.generate_content_stream(model=MODEL, contents="hi"):
            pass
    assert caught.value.code == 503


THINKING_REQUEST = {**REQUEST, "generationConfig": {"thinkingConfig": {"includeThoughts": True}}}
THINKING = {
    "tools": cs.thinking(cs.tool_calls(("get_weather", {"city": "Paris"}), ("get_time", {}))),
    "text": cs.thinking(cs.text("It is sunny.", pieces=3)),
}
GEMINI_3 = "gemini-3-pro-preview"


@pytest.mark.parametrize("name", sorted(THINKING))
async def test_thinking_answers_validate(emulator: GeminiEmulator, raw: httpx.AsyncClient, name: str) -> None:
    emulator.enqueue(THINKING[name], THINKING[name])
    whole = types.GenerateContentResponse.model_validate(
        (await raw.post(GENERATE, json=THINKING_REQUEST)).json()
    )
    assert_no_extra(whole)
    parts = whole.candidates[0].content.parts if whole.candidates and whole.candidates[0].content else None
    assert parts is not None and parts[0].thought is True
    assert sum(1 for p in parts if p.thought_signature) == 1
    assert whole.usage_metadata is not None and whole.usage_metadata.thoughts_token_count
    body = (await raw.post(STREAM, params={"alt": "sse"}, json=THINKING_REQUEST)).content
    decoder = SSEDecoder()
    chunks = [json.loads(e.data) for e in decoder.feed(body) + decoder.end()]
    for chunk in chunks:
        assert_no_extra(types.GenerateContentResponse.model_validate(chunk))
    signed = [p for c in chunks for p in c["candidates"][0]["content"]["parts"] if "thoughtSignature" in p]
    assert len(signed) == 1


def _history(call_part: dict[str, Any]) -> dict[str, Any]:
    return {
        "contents": [
            {"role": "user", "parts": [{"text": "weather in Paris?"}]},
            {"role": "model", "parts": [call_part]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"t": 18}}}]},
        ]
    }


async def test_gemini_3_rejects_a_function_call_replayed_without_its_signature(
    emulator: GeminiEmulator, raw: httpx.AsyncClient, sdk: genai.Client
) -> None:
    emulator.enqueue(THINKING["tools"])
    first = await sdk.aio.models.generate_content(model=GEMINI_3, contents="weather in Paris?")
    assert first.candidates and first.candidates[0].content and first.candidates[0].content.parts
    signed = first.candidates[0].content.parts[0]
    assert signed.function_call is not None and signed.thought_signature
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    url = f"/v1beta/models/{GEMINI_3}:generateContent"

    missing = await raw.post(url, json=_history(call))
    assert missing.status_code == 400 and missing.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "missing a thought_signature" in missing.json()["error"]["message"]
    with pytest.raises(errors.ClientError):
        await sdk.aio.models.generate_content(
            model=GEMINI_3, contents=[types.Content.model_validate(c) for c in _history(call)["contents"]]
        )
    forged = await raw.post(url, json=_history({**call, "thoughtSignature": "Zm9yZ2Vk"}))
    assert forged.status_code == 400 and "Corrupted" in forged.json()["error"]["message"]
    # The signature as issued (the SDK replays it), and Google's documented dummy, are accepted.
    replay = [
        types.Content(role="user", parts=[types.Part(text="weather in Paris?")]),
        first.candidates[0].content,
        types.Content(
            role="user",
            parts=[types.Part.from_function_response(name="get_weather", response={"t": 18})],
        ),
    ]
    await sdk.aio.models.generate_content(model=GEMINI_3, contents=replay)
    dummy = {**call, "thoughtSignature": "skip_thought_signature_validator"}
    assert (await raw.post(url, json=_history(dummy))).status_code == 200
    # Gemini 2.5 does not enforce signatures.
    assert (await raw.post(GENERATE, json=_history(call))).status_code == 200
