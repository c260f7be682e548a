"""ChatRequest → Anthropic Messages body: pure translation, no sockets."""

from __future__ import annotations

import pytest

from providers.adapters.anthropic_wire import DEFAULT_MAX_TOKENS, build_request
from providers.contract import ErrorClass
from providers.errors import ProviderError
from providers.types import (
    AudioPart,
    ChatRequest,
    ImagePart,
    JsonObjectFormat,
    JsonSchemaFormat,
    Message,
    NamedToolChoice,
    Role,
    TextPart,
    ToolCall,
    ToolChoice,
    ToolSpec,
)

MODEL = "claude-sonnet-4-6"


def user(text: str) -> Message:
    return Message(Role.USER, (TextPart(text),))


def request(*messages: Message, **kwargs: object) -> ChatRequest:
    return ChatRequest(model=MODEL, messages=messages, **kwargs)


def test_system_messages_are_hoisted_and_joined() -> None:
    body = build_request(
        request(
            Message(Role.SYSTEM, (TextPart("Be brief."),)),
            user("Hi"),
            Message(Role.SYSTEM, (TextPart("Be kind."),)),
        )
    ).body
    assert body["system"] == "Be brief.\n\nBe kind."
    assert [m["role"] for m in body["messages"]] == ["user"]


def test_consecutive_same_role_turns_merge_and_tool_results_join_the_user_turn() -> None:
    calls = (
        ToolCall(id="toolu_1", name="get_weather", arguments='{"city": "Paris"}'),
        ToolCall(id="toolu_2", name="get_time", arguments=""),
    )
    body = build_request(
        request(
            user("Weather?"),
            user("And time?"),
            Message(Role.ASSISTANT, (TextPart("Checking."),), tool_calls=calls),
            Message(Role.TOOL, (TextPart("18C"),), tool_call_id="toolu_1"),
            Message(Role.TOOL, (TextPart("12:00"),), tool_call_id="toolu_2"),
            user("Thanks"),
        )
    ).body
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "Weather?"},
        {"type": "text", "text": "And time?"},
    ]
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
    ]
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "12:00"},
        {"type": "text", "text": "Thanks"},
    ]


def test_images_become_base64_or_url_sources_and_empty_text_is_dropped() -> None:
    message = Message(
        Role.USER,
        (
            TextPart(""),
            ImagePart("data:image/png;base64,iVBORw0KGgo="),
            ImagePart("https://example.com/cat.jpg"),
        ),
    )
    content = build_request(request(message)).body["messages"][0]["content"]
    assert content == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_tool_result_with_an_image_keeps_blocks() -> None:
    result = Message(
        Role.TOOL, (TextPart("chart"), ImagePart("data:image/gif;base64,R0lG")), tool_call_id="toolu_9"
    )
    (block,) = build_request(request(user("draw"), result)).body["messages"][0]["content"][1:]
    assert block["content"][1]["source"]["media_type"] == "image/gif"


def test_max_tokens_defaults_and_caller_value_wins() -> None:
    assert build_request(request(user("x"))).body["max_tokens"] == DEFAULT_MAX_TOKENS
    assert build_request(request(user("x"), max_output_tokens=77)).body["max_tokens"] == 77


def test_sampling_params_only_under_2023_06_01_and_clamped() -> None:
    req = request(user("x"), temperature=1.7)
    assert build_request(req, version="2023-06-01").body["temperature"] == 1.0
    assert "temperature" not in build_request(req, version="2026-10-21").body


def test_stop_sequences_and_user_id() -> None:
    body = build_request(request(user("x"), stop=("END",), metadata={"user_id": "u-42", "other": "x"})).body
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "u-42"}


@pytest.mark.parametrize(
    ("choice", "parallel", "wire"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", False, {"type": "none"}),
        (NamedToolChoice("get_weather"), None, {"type": "tool", "name": "get_weather"}),
        (
            NamedToolChoice("get_weather"),
            False,
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (None, None, None),
    ],
)
def test_tool_choice(
    choice: ToolChoice | None, parallel: bool | None, wire: dict[str, object] | None
) -> None:
    spec = ToolSpec(name="get_weather", description="Weather", parameters={"type": "object"}, strict=True)
    body = build_request(
        request(user("x"), tools=(spec,), tool_choice=choice, parallel_tool_calls=parallel)
    ).body
    assert body["tools"] == [
        {"name": "get_weather", "input_schema": {"type": "object"}, "description": "Weather", "strict": True}
    ]
    assert body.get("tool_choice") == wire


def test_tool_without_parameters_gets_an_empty_object_schema() -> None:
    body = build_request(request(user("x"), tools=(ToolSpec(name="now"),))).body
    assert body["tools"] == [{"name": "now", "input_schema": {"type": "object", "properties": {}}}]


def test_structured_output_is_a_forced_tool() -> None:
    fmt = JsonSchemaFormat(
        name="city info", schema={"type": "object", "properties": {"name": {"type": "string"}}}
    )
    wire = build_request(request(user("x"), response_format=fmt, tool_choice="auto"))
    assert wire.structured_tool == "city_info"
    assert wire.body["tools"][-1]["input_schema"] == fmt.schema
    assert wire.body["tool_choice"] == {"type": "tool", "name": "city_info"}


def test_json_object_format_uses_an_open_object_schema() -> None:
    wire = build_request(request(user("x"), response_format=JsonObjectFormat()))
    assert wire.body["tools"] == [
        {
            "name": "json_output",
            "description": wire.body["tools"][0]["description"],
            "input_schema": {"type": "object"},
        }
    ]


def test_structured_tool_name_colliding_with_a_caller_tool_is_rejected() -> None:
    fmt = JsonSchemaFormat(name="lookup", schema={"type": "object"})
    with pytest.raises(ProviderError) as caught:
        build_request(request(user("x"), tools=(ToolSpec(name="lookup"),), response_format=fmt))
    assert caught.value.error_class is ErrorClass.INVALID_REQUEST


def test_audio_is_rejected() -> None:
    with pytest.raises(ProviderError) as caught:
        build_request(request(Message(Role.USER, (AudioPart("AAAA", "wav"),))))
    assert caught.value.error_class is ErrorClass.INVALID_REQUEST


def test_malformed_history_arguments_are_rejected_without_echo() -> None:
    secret_args = '{"ssn": "123-45-6789"'
    bad = Message(Role.ASSISTANT, tool_calls=(ToolCall(id="toolu_1", name="f", arguments=secret_args),))
    with pytest.raises(ProviderError) as caught:
        build_request(request(user("x"), bad))
    assert caught.value.error_class is ErrorClass.INVALID_REQUEST
    assert "123-45" not in str(caught.value)


def test_tool_message_without_id_is_rejected() -> None:
    with pytest.raises(ProviderError):
        build_request(request(user("x"), Message(Role.TOOL, (TextPart("r"),))))
