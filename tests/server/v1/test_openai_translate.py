"""Pure translation OpenAI JSON <-> providers.types, no sockets."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from providers.adapters.openai_quirks import OpenAIQuirks
from providers.adapters.openai_translate import build_request
from providers.types import (
    ChatResponse,
    Finish,
    FinishReason,
    ImagePart,
    JsonSchemaFormat,
    NamedToolChoice,
    Reasoning,
    Role,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from server.v1.openai_translate import ChunkEncoder, WireRequestError, completion_body, to_chat_request
from server.v1.openai_wire import ChatCompletionRequest


def parse(body: dict[str, object]) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate_json(orjson.dumps(body))


def test_request_maps_roles_parts_tools_and_formats() -> None:
    request = to_chat_request(
        parse(
            {
                "model": "agent:support",
                "messages": [
                    {"role": "developer", "content": "rules"},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "see"},
                            {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                        ],
                    },
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                        ],
                    },
                    {"role": "tool", "tool_call_id": "c1", "content": "ok"},
                ],
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
                "tool_choice": {"type": "function", "function": {"name": "f"}},
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "s", "schema": {"type": "object"}, "strict": True},
                },
                "max_tokens": 10,
                "max_completion_tokens": 20,
                "stop": "END",
                "temperature": 0.5,
                "seed": 7,
            }
        )
    )
    assert [m.role for m in request.messages] == [Role.SYSTEM, Role.USER, Role.ASSISTANT, Role.TOOL]
    assert request.messages[1].content[1] == ImagePart(url="https://x/y.png")
    assert request.messages[2].tool_calls == (ToolCall("c1", "f", "{}"),)
    assert request.messages[3].tool_call_id == "c1"
    assert request.tool_choice == NamedToolChoice("f")
    assert request.response_format == JsonSchemaFormat(name="s", schema={"type": "object"}, strict=True)
    assert (request.max_output_tokens, request.stop, request.temperature) == (20, ("END",), 0.5)
    assert request.model == "agent:support"


def test_a_text_history_goes_upstream_as_it_came() -> None:
    """The common message (text only: no parts list, calls or reasoning) both ways."""
    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi."},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Look it up.", "name": "ada"},
        {"role": "assistant", "content": "", "tool_calls": []},
        {"role": "assistant", "content": "Thinking aloud.", "reasoning_content": "shown, not replayed"},
        {"role": "user", "content": [{"type": "text", "text": "two "}, {"type": "text", "text": "parts"}]},
    ]
    request = to_chat_request(parse({"model": "m", "messages": history}))
    assert request.messages[4].content == () and request.messages[4].reasoning == Reasoning()
    assert request.messages[5].reasoning == Reasoning(text="shown, not replayed")
    assert [m.text for m in request.messages] == [
        "Be brief.",
        "Hi.",
        "Hello.",
        "Look it up.",
        "",
        "Thinking aloud.",
        "two parts",
    ]
    sent = build_request(request, OpenAIQuirks())["messages"]
    assert sent == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi."},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Look it up.", "name": "ada"},
        {"role": "assistant", "content": None},
        {"role": "assistant", "content": "Thinking aloud."},
        {"role": "user", "content": "two parts"},
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        (
            {
                "messages": [
                    {"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}
                ]
            },
            "messages[0].content",
        ),
    ],
)
def test_unrepresentable_requests_are_refused(body: dict[str, object], param: str) -> None:
    with pytest.raises(WireRequestError) as info:
        to_chat_request(parse({"model": "m", **body}))
    assert info.value.param == param


def test_schema_violations_are_validation_errors() -> None:
    with pytest.raises(ValidationError):
        parse({"model": "m", "messages": [{"role": "user", "content": [{"type": "video", "url": "x"}]}]})
    with pytest.raises(ValidationError):
        parse({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 3})


def test_completion_body_shape() -> None:
    response = ChatResponse(
        text="",
        tool_calls=(ToolCall("c1", "f", '{"a":1}'),),
        finish_reason=FinishReason.TOOL_CALLS,
        usage=Usage(input_tokens=10, output_tokens=5, cached_input_tokens=4, reasoning_tokens=2),
        model="gpt-4o-mini",
    )
    body = orjson.loads(
        completion_body(response, completion_id="chatcmpl-1", model="openai/gpt-4o-mini", created=1)
    )
    assert body["choices"][0] == {
        "index": 0,
        "message": {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
            ],
        },
        "finish_reason": "tool_calls",
        "logprobs": None,
    }
    assert body["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }


def _frames(raw: bytes) -> list[object]:
    out: list[object] = []
    for frame in raw.split(b"\n\n"):
        if frame.startswith(b"data: [DONE]"):
            out.append("[DONE]")
        elif frame.startswith(b"data: "):
            out.append(orjson.loads(frame[6:]))
    return out


def test_chunk_encoder_streams_openai_chunks_with_trailing_usage() -> None:
    enc = ChunkEncoder(completion_id="chatcmpl-1", model="openai/gpt-4o-mini", include_usage=True, created=1)
    raw = enc.start()
    for event in (
        TextDelta("Hi"),
        ToolCallStart(0, "c1", "f"),
        ToolCallDelta(0, '{"a"'),
        ToolCallDelta(0, ":1}"),
        ToolCallDone(0, ToolCall("c1", "f", '{"a":1}')),
        ToolCallDone(1, ToolCall("c2", "g", "{}")),
        UsageUpdate(Usage(3, 4)),
        Finish(FinishReason.TOOL_CALLS),
    ):
        raw += enc.encode(event)
    raw += enc.end()
    frames = _frames(raw)
    deltas = [f["choices"][0]["delta"] for f in frames[:-2]]  # type: ignore[index]
    assert deltas[0] == {"role": "assistant", "content": "", "refusal": None}
    assert deltas[1] == {"content": "Hi"}
    assert deltas[2]["tool_calls"][0] == {
        "index": 0,
        "id": "c1",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    assert "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas[2:5]) == '{"a":1}'
    assert deltas[5]["tool_calls"][0] == {
        "index": 1,
        "id": "c2",
        "type": "function",
        "function": {"name": "g", "arguments": "{}"},
    }
    assert frames[-3]["choices"][0]["finish_reason"] == "tool_calls"  # type: ignore[index]
    assert frames[-2]["choices"] == [] and frames[-2]["usage"]["total_tokens"] == 7  # type: ignore[index]
    assert frames[-1] == "[DONE]"
    assert all(f["id"] == "chatcmpl-1" and f["object"] == "chat.completion.chunk" for f in frames[:-1])  # type: ignore[index]


def test_chunk_encoder_without_usage_ends_with_done_only() -> None:
    enc = ChunkEncoder(completion_id="c", model="m", include_usage=False)
    enc.encode(UsageUpdate(Usage(1, 1)))
    assert enc.end() == b"data: [DONE]\n\n"
