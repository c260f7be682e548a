"""ChatRequest → Gemini generateContent body: pure translation, no sockets."""

from __future__ import annotations

import pytest

from providers.adapters.gemini_wire import build_request
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

MODEL = "gemini-2.5-flash"


def user(text: str) -> Message:
    return Message(Role.USER, (TextPart(text),))


def request(*messages: Message, **kwargs: object) -> ChatRequest:
    return ChatRequest(model=MODEL, messages=messages, **kwargs)


def test_system_instruction_and_roles() -> None:
    body = build_request(
        request(
            Message(Role.SYSTEM, (TextPart("Be brief."),)),
            user("Hi"),
            Message(Role.ASSISTANT, (TextPart("Hello"),)),
            user("Bye"),
        )
    )
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {"role": "model", "parts": [{"text": "Hello"}]},
        {"role": "user", "parts": [{"text": "Bye"}]},
    ]
    assert "generationConfig" not in body and "tools" not in body


def test_function_calls_and_responses_resolve_names_from_ids() -> None:
    calls = (
        ToolCall(id="call_a", name="get_weather", arguments='{"city": "Paris"}'),
        ToolCall(id="call_b", name="get_time", arguments=""),
    )
    body = build_request(
        request(
            user("Weather and time?"),
            Message(Role.ASSISTANT, tool_calls=calls),
            Message(Role.TOOL, (TextPart('{"temp": 18}'),), tool_call_id="call_a"),
            Message(Role.TOOL, (TextPart("12:00"),), tool_call_id="call_b"),
        )
    )
    # Calls Gemini did not sign get Google's documented dummy signature on the first call.
    assert body["contents"][1] == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                "thoughtSignature": "skip_thought_signature_validator",
            },
            {"functionCall": {"name": "get_time", "args": {}}},
        ],
    }
    assert body["contents"][2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp": 18}}},
            {"functionResponse": {"name": "get_time", "response": {"output": "12:00"}}},
        ],
    }


def test_unresolvable_tool_result_is_rejected_unless_named() -> None:
    orphan = Message(Role.TOOL, (TextPart("x"),), tool_call_id="call_zzz")
    with pytest.raises(ProviderError) as caught:
        build_request(request(user("x"), orphan))
    assert caught.value.error_class is ErrorClass.INVALID_REQUEST
    named = Message(Role.TOOL, (TextPart("x"),), tool_call_id="call_zzz", name="lookup")
    assert (
        build_request(request(user("x"), named))["contents"][0]["parts"][1]["functionResponse"]["name"]
        == "lookup"
    )


def test_media_parts() -> None:
    message = Message(
        Role.USER,
        (
            ImagePart("data:image/webp;base64,UklGRg=="),
            ImagePart("https://example.com/a/cat.png?size=2"),
            AudioPart("UklGRiQ=", "wav"),
            AudioPart("SUQz", "mp3"),
        ),
    )
    assert build_request(request(message))["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "image/webp", "data": "UklGRg=="}},
        {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/a/cat.png?size=2"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRiQ="}},
        {"inlineData": {"mimeType": "audio/mp3", "data": "SUQz"}},
    ]


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("required", {"mode": "ANY"}),
        ("none", {"mode": "NONE"}),
        (NamedToolChoice("get_weather"), {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
    ],
)
def test_tools_and_tool_config(choice: ToolChoice, config: dict[str, object]) -> None:
    spec = ToolSpec(name="get_weather", description="Weather", parameters={"type": "object"})
    body = build_request(request(user("x"), tools=(spec, ToolSpec(name="now")), tool_choice=choice))
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {"name": "get_weather", "description": "Weather", "parametersJsonSchema": {"type": "object"}},
                {"name": "now"},
            ]
        }
    ]
    assert body["toolConfig"] == {"functionCallingConfig": config}


def test_generation_config() -> None:
    body = build_request(request(user("x"), max_output_tokens=100, temperature=0.2, stop=("END", "STOP")))
    assert body["generationConfig"] == {
        "maxOutputTokens": 100,
        "temperature": 0.2,
        "stopSequences": ["END", "STOP"],
    }


def test_structured_output() -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    body = build_request(request(user("x"), response_format=JsonSchemaFormat(name="c", schema=schema)))
    assert body["generationConfig"] == {"responseMimeType": "application/json", "responseJsonSchema": schema}
    body = build_request(request(user("x"), response_format=JsonObjectFormat()))
    assert body["generationConfig"] == {"responseMimeType": "application/json"}


def test_malformed_history_arguments_are_rejected_without_echo() -> None:
    bad = Message(Role.ASSISTANT, tool_calls=(ToolCall(id="c", name="f", arguments="[1, 2]"),))
    with pytest.raises(ProviderError) as caught:
        build_request(request(user("x"), bad))
    assert "[1, 2]" not in str(caught.value)
