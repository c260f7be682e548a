"""Pure translation for `openai-chat`: request building, response parsing, stream events."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from providers.adapters.openai_chat import StreamTranslator, build_request, parse_response
from providers.adapters.openai_quirks import QUIRKS, OpenAIQuirks, alnum9_tool_id, quirks_for
from providers.adapters.openai_translate import tool_id_map
from providers.contract import ErrorClass, ProviderId
from providers.errors import ProviderError
from providers.types import (
    AudioPart,
    ChatRequest,
    Finish,
    FinishReason,
    ImagePart,
    JsonObjectFormat,
    JsonSchemaFormat,
    Message,
    NamedToolChoice,
    RefusalDelta,
    Role,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStart,
    ToolSpec,
    Usage,
    UsageUpdate,
)

DEFAULT = OpenAIQuirks()
OPENAI = quirks_for(ProviderId.OPENAI, "https://api.openai.com/v1")
MISTRAL = quirks_for(ProviderId.MISTRAL, "https://api.mistral.ai/v1")


def user(text: str) -> Message:
    return Message(Role.USER, (TextPart(text),))


HISTORY = (
    Message(Role.SYSTEM, (TextPart("Be brief."),)),
    user("Weather in Paris?"),
    Message(Role.ASSISTANT, tool_calls=(ToolCall("toolu_01ABCdef", "get_weather", '{"city":"Paris"}'),)),
    Message(Role.TOOL, (TextPart('{"temp_c":21}'),), tool_call_id="toolu_01ABCdef"),
)


def test_minimal_request() -> None:
    body = build_request(ChatRequest(model="m", messages=(user("hi"),)), DEFAULT)
    assert body == {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_full_request_shape() -> None:
    req = ChatRequest(
        model="gpt-4.1",
        messages=HISTORY,
        tools=(ToolSpec("get_weather", "Look up weather", {"type": "object"}, strict=True),),
        tool_choice=NamedToolChoice("get_weather"),
        parallel_tool_calls=False,
        response_format=JsonSchemaFormat("w", {"type": "object"}, description="weather"),
        max_output_tokens=64,
        temperature=0.2,
        stop=("END",),
    )
    body = build_request(req, OPENAI, stream=True)
    assert body["messages"][0] == {"role": "developer", "content": "Be brief."}
    assert body["messages"][2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "toolu_01ABCdef",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    }
    assert body["messages"][3] == {
        "role": "tool",
        "tool_call_id": "toolu_01ABCdef",
        "content": '{"temp_c":21}',
    }
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object"},
                "description": "Look up weather",
                "strict": True,
            },
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": True, "description": "weather"},
    }
    assert body["max_completion_tokens"] == 64
    assert "max_tokens" not in body
    assert (body["temperature"], body["stop"]) == (0.2, ["END"])
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_compatible_servers_get_max_tokens_and_system_role() -> None:
    for provider in (
        ProviderId.OPENROUTER,
        ProviderId.XAI,
        ProviderId.MOONSHOT,
        ProviderId.OPENAI_COMPATIBLE,
    ):
        body = build_request(
            ChatRequest(model="m", messages=HISTORY[:2], max_output_tokens=5),
            quirks_for(provider, "https://x/v1"),
        )
        assert body["max_tokens"] == 5
        assert "max_completion_tokens" not in body
        assert body["messages"][0]["role"] == "system"


def test_developer_role_only_for_api_openai_com() -> None:
    proxied = quirks_for(ProviderId.OPENAI, "http://127.0.0.1:9000/v1")
    assert proxied.system_role == "system"
    assert proxied.max_tokens_field == "max_completion_tokens"
    assert OPENAI.system_role == "developer"


def test_parallel_tool_calls_dropped_without_tools() -> None:
    body = build_request(ChatRequest(model="m", messages=(user("x"),), parallel_tool_calls=True), DEFAULT)
    assert "parallel_tool_calls" not in body


def test_images_and_audio_parts() -> None:
    msg = Message(
        Role.USER,
        (
            TextPart("What is this?"),
            ImagePart("data:image/png;base64,iVBO", detail="low"),
            AudioPart("UklGR", "wav"),
        ),
    )
    body = build_request(ChatRequest(model="m", messages=(msg,)), DEFAULT)
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO", "detail": "low"}},
        {"type": "input_audio", "input_audio": {"data": "UklGR", "format": "wav"}},
    ]


def test_json_object_and_choice_modes() -> None:
    body = build_request(
        ChatRequest(
            model="m", messages=(user("x"),), response_format=JsonObjectFormat(), tool_choice="required"
        ),
        DEFAULT,
    )
    assert body["response_format"] == {"type": "json_object"}
    assert body["tool_choice"] == "required"


def test_mistral_tool_ids_are_remapped_consistently_and_mapped_back() -> None:
    body = build_request(ChatRequest(model="m", messages=HISTORY), MISTRAL)
    wire_id = body["messages"][2]["tool_calls"][0]["id"]
    assert len(wire_id) == 9
    assert wire_id.isalnum()
    assert body["messages"][3]["tool_call_id"] == wire_id
    assert alnum9_tool_id("toolu_01ABCdef") == wire_id
    assert alnum9_tool_id("abcDEF123") == "abcDEF123"
    mapping = tool_id_map(ChatRequest(model="m", messages=HISTORY), MISTRAL)
    assert mapping == {wire_id: "toolu_01ABCdef"}
    echoed = {
        "choices": [
            {"message": {"tool_calls": [{"id": wire_id, "function": {"name": "f", "arguments": "{}"}}]}}
        ]
    }
    assert parse_response(echoed, id_map=mapping).tool_calls[0].id == "toolu_01ABCdef"
    assert tool_id_map(ChatRequest(model="m", messages=HISTORY), DEFAULT) == {}
    assert set(QUIRKS) == {ProviderId.OPENAI, ProviderId.MISTRAL}


def test_distinct_ids_stay_distinct_under_remapping() -> None:
    ids = {alnum9_tool_id(f"call_{i}") for i in range(2000)}
    assert len(ids) == 2000


FULL_RESPONSE: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 20,
        "completion_tokens": 9,
        "total_tokens": 29,
        "prompt_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 2},
        "completion_tokens_details": {"reasoning_tokens": 3},
        "cost": 0.0001,
    },
}


def test_parse_response() -> None:
    r = parse_response(FULL_RESPONSE)
    assert r.text == ""
    assert r.tool_calls == (ToolCall("call_a", "get_weather", '{"city":"Paris"}'),)
    assert r.finish_reason is FinishReason.TOOL_CALLS
    assert r.usage == Usage(
        input_tokens=20,
        output_tokens=9,
        cached_input_tokens=4,
        cache_write_tokens=2,
        reasoning_tokens=3,
        provider_cost=0.0001,
    )
    assert (r.model, r.response_id) == ("gpt-4o-mini-2024-07-18", "chatcmpl-1")


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("stop", FinishReason.STOP),
        ("length", FinishReason.LENGTH),
        ("model_length", FinishReason.LENGTH),
        ("content_filter", FinishReason.CONTENT_FILTER),
        ("function_call", FinishReason.TOOL_CALLS),
        (None, FinishReason.STOP),
        ("something_new", FinishReason.STOP),
    ],
)
def test_finish_reasons(raw: str | None, expected: FinishReason) -> None:
    body = {"choices": [{"message": {"content": "x"}, "finish_reason": raw}]}
    assert parse_response(body).finish_reason is expected


def test_refusal_is_content_filter() -> None:
    body = {"choices": [{"message": {"content": None, "refusal": "I can't."}, "finish_reason": "stop"}]}
    r = parse_response(body)
    assert (r.refusal, r.finish_reason, r.text) == ("I can't.", FinishReason.CONTENT_FILTER, "")


def test_minimal_compat_response_and_kimi_choice_usage() -> None:
    body = {
        "choices": [{"message": {"content": "hi"}, "usage": {"prompt_tokens": 3, "completion_tokens": 1}}]
    }
    r = parse_response(body)
    assert r.text == "hi"
    assert r.usage == Usage(input_tokens=3, output_tokens=1)


@pytest.mark.parametrize("body", [{}, {"choices": []}, {"choices": ["x"]}, {"choices": [{"message": "x"}]}])
def test_malformed_response(body: dict[str, Any]) -> None:
    with pytest.raises(ProviderError) as info:
        parse_response(body, provider="openai")
    assert info.value.error_class is ErrorClass.SERVER_ERROR


def test_error_body_with_200() -> None:
    with pytest.raises(ProviderError) as info:
        parse_response({"error": {"code": 502, "message": "upstream down"}}, provider="openrouter")
    assert info.value.error_class is ErrorClass.SERVER_ERROR


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "c", "object": "chat.completion.chunk", "choices": choices, **extra}


def run(chunks: list[dict[str, Any]], **kw: Any) -> list[Any]:
    t = StreamTranslator(**kw)
    events: list[Any] = []
    for c in chunks:
        events += t.feed(c)
    return events + t.finish()


def test_text_stream_with_usage_chunk() -> None:
    events = run(
        [
            chunk({"role": "assistant", "content": "", "refusal": None}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}),
            chunk({}, "stop"),
            chunk(None, usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}),
        ]
    )
    assert events == [
        TextDelta("Hel"),
        TextDelta("lo"),
        UsageUpdate(Usage(input_tokens=5, output_tokens=2)),
        Finish(FinishReason.STOP),
    ]


def test_interleaved_parallel_tool_calls() -> None:
    events = run(
        [
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "a", "arguments": ""},
                        }
                    ]
                }
            ),
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 1,
                            "id": "call_b",
                            "type": "function",
                            "function": {"name": "b", "arguments": ""},
                        }
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}),
            chunk({"tool_calls": [{"index": 1, "function": {"arguments": '{"tz":'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Paris"}'}}]}),
            chunk({"tool_calls": [{"index": 1, "function": {"arguments": '"UTC"}'}}]}),
            chunk({}, "tool_calls"),
        ]
    )
    assert events[:2] == [ToolCallStart(0, "call_a", "a"), ToolCallStart(1, "call_b", "b")]
    assert [e for e in events if isinstance(e, ToolCallDelta)] == [
        ToolCallDelta(0, '{"ci'),
        ToolCallDelta(1, '{"tz":'),
        ToolCallDelta(0, 'ty":"Paris"}'),
        ToolCallDelta(1, '"UTC"}'),
    ]
    done = [e for e in events if isinstance(e, ToolCallDone)]
    assert [d.call.parsed_arguments() for d in done] == [{"city": "Paris"}, {"tz": "UTC"}]
    assert events[-1] == Finish(FinishReason.TOOL_CALLS)


def test_ollama_style_complete_tool_call_in_one_delta() -> None:
    events = run(
        [
            chunk({"tool_calls": [{"id": "x", "function": {"name": "f", "arguments": '{"a":1}'}}]}),
            chunk({}, "tool_calls"),
        ]
    )
    assert events == [
        ToolCallStart(0, "x", "f"),
        ToolCallDelta(0, '{"a":1}'),
        ToolCallDone(0, ToolCall("x", "f", '{"a":1}')),
        Finish(FinishReason.TOOL_CALLS),
    ]


def test_refusal_stream() -> None:
    events = run([chunk({"refusal": "I can"}), chunk({"refusal": "'t."}), chunk({}, "stop")])
    assert events == [RefusalDelta("I can"), RefusalDelta("'t."), Finish(FinishReason.CONTENT_FILTER)]


def test_kimi_usage_in_choice_and_mistral_usage_in_final_chunk() -> None:
    kimi = chunk({}, "stop")
    kimi["choices"][0]["usage"] = {"prompt_tokens": 8, "completion_tokens": 3}
    assert run([chunk({"content": "x"}), kimi])[-2] == UsageUpdate(Usage(8, 3))
    mistral = chunk({}, "stop", usage={"prompt_tokens": 9, "completion_tokens": 4})
    assert run([chunk({"content": "x"}), mistral])[-2] == UsageUpdate(Usage(9, 4))


def test_cumulative_usage_on_every_chunk_is_emitted_once() -> None:
    events = run(
        [
            chunk({"content": "a"}, usage={"prompt_tokens": 5, "completion_tokens": 1}),
            chunk({"content": "b"}, usage={"prompt_tokens": 5, "completion_tokens": 2}),
            chunk({}, "stop", usage={"prompt_tokens": 5, "completion_tokens": 3}),
        ]
    )
    assert [e for e in events if isinstance(e, UsageUpdate)] == [UsageUpdate(Usage(5, 3))]


def test_midstream_error_chunk_raises_classified() -> None:
    t = StreamTranslator(provider="openai")
    t.feed(chunk({"content": "partial"}))
    with pytest.raises(ProviderError) as info:
        t.feed({"error": {"message": "overloaded", "type": "server_error", "code": "slow_down"}})
    assert info.value.error_class is ErrorClass.OVERLOADED
    assert info.value.status is None


def test_openrouter_error_finish_chunk() -> None:
    t = StreamTranslator(provider="openrouter")
    bad = chunk({"content": ""}, "error", error={"code": 502, "message": "Provider disconnected"})
    with pytest.raises(ProviderError) as info:
        t.feed(bad)
    assert info.value.error_class is ErrorClass.SERVER_ERROR
    assert info.value.provider_code == "502"


def test_error_finish_without_error_object() -> None:
    with pytest.raises(ProviderError) as info:
        StreamTranslator(provider="mistral").feed(chunk({}, "error"))
    assert info.value.error_class is ErrorClass.SERVER_ERROR


def test_stream_ids_mapped_back() -> None:
    events = run(
        [
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "id": "abcDEF123", "function": {"name": "f", "arguments": "{}"}}
                    ]
                }
            )
        ],
        id_map={"abcDEF123": "toolu_original"},
    )
    assert events[0] == ToolCallStart(0, "toolu_original", "f")


class CountingKey:
    fingerprint = "fp"

    def __init__(self) -> None:
        self.purposes: list[str] = []

    def reveal(self, purpose: str) -> str:
        self.purposes.append(purpose)
        return "sk-test-CANARY-headers"


def test_headers_reveal_once_for_chat() -> None:
    from providers.adapters.base import Endpoint
    from providers.adapters.openai_chat import build_headers, chat_url
    from providers.contract import PRESETS

    key = CountingKey()
    endpoint = Endpoint(
        PRESETS[ProviderId.OPENROUTER],
        "https://openrouter.ai/api/v1/",
        key,
        extra_headers={"X-Title": "Patchbay"},
    )
    headers = build_headers(endpoint, stream=True)
    assert key.purposes == ["chat"]
    assert headers == {
        "content-type": "application/json",
        "accept": "text/event-stream",
        "X-Title": "Patchbay",
        "authorization": "Bearer sk-test-CANARY-headers",
    }
    assert chat_url(endpoint) == "https://openrouter.ai/api/v1/chat/completions"


def test_no_credential_sends_no_auth_header() -> None:
    from providers.adapters.base import Endpoint
    from providers.adapters.openai_chat import build_headers
    from providers.contract import PRESETS
    from providers.credentials import NoCredential

    endpoint = Endpoint(PRESETS[ProviderId.OPENAI_COMPATIBLE], "http://ollama:11434/v1", NoCredential())
    assert "authorization" not in build_headers(endpoint, stream=False)


def test_content_as_typed_parts() -> None:
    parts = [
        {"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]},
        {"type": "text", "text": "Answer"},
    ]
    assert parse_response({"choices": [{"message": {"content": parts}}]}).text == "Answer"
    assert run([chunk({"content": [{"type": "text", "text": "Hi"}]}), chunk({}, "stop")])[0] == TextDelta(
        "Hi"
    )


def test_malformed_tool_call_entries() -> None:
    with pytest.raises(ProviderError):
        parse_response({"choices": [{"message": {"tool_calls": ["x"]}}]})
    with pytest.raises(ProviderError):
        StreamTranslator().feed(chunk({"tool_calls": [None]}))


_JSON_LEAF = st.none() | st.booleans() | st.integers() | st.text(max_size=8)


@settings(max_examples=300, deadline=None)
@given(
    delta=st.dictionaries(
        st.sampled_from(["role", "content", "refusal", "reasoning"]),
        _JSON_LEAF | st.lists(_JSON_LEAF, max_size=2),
        max_size=3,
    ),
    finish=st.none() | st.sampled_from(["stop", "length", ""]),
    usage=st.none() | st.just({"prompt_tokens": 3, "completion_tokens": 1}),
)
def test_a_text_chunk_translates_as_the_general_path_does(
    delta: dict[str, Any], finish: str | None, usage: dict[str, Any] | None
) -> None:
    # `tool_calls: []` adds nothing to a delta but keeps it off the text-only shortcut, so the
    # second translator takes the general path for every chunk the first may take the shortcut for.
    plain, general = StreamTranslator(), StreamTranslator()
    extra = {} if usage is None else {"usage": usage}
    outcomes = []
    for translator, body in ((plain, delta), (general, {**delta, "tool_calls": []})):
        try:
            outcomes.append(
                (translator.feed(chunk(body, finish, **extra)), translator.finish(), translator.text)
            )
        except ProviderError as exc:
            outcomes.append((exc.error_class, exc.message))
    assert outcomes[0] == outcomes[1]
