"""Pure translation Anthropic Messages JSON <-> providers.types, no sockets."""

from __future__ import annotations

import orjson
import pytest

from providers.types import (
    ChatResponse,
    Finish,
    FinishReason,
    ImagePart,
    NamedToolChoice,
    Role,
    TextDelta,
    ToolCall,
    ToolCallDone,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from server.v1.anthropic_translate import MessageEventEncoder, message_body, to_chat_request
from server.v1.anthropic_wire import MessagesRequest
from server.v1.openai_translate import WireRequestError


def parse(body: dict[str, object]) -> MessagesRequest:
    return MessagesRequest.model_validate_json(orjson.dumps(body))


def test_turns_become_normalized_messages() -> None:
    request = to_chat_request(
        parse(
            {
                "model": "default",
                "max_tokens": 50,
                "system": [{"type": "text", "text": "rules"}],
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "look"},
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "image/png", "data": "AA=="},
                            },
                        ],
                    },
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "text", "text": "calling"},
                            {"type": "tool_use", "id": "tu1", "name": "f", "input": {"a": 1}},
                        ],
                    },
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": "tu1",
                                "content": [{"type": "text", "text": "done"}],
                                "is_error": True,
                            },
                            {"type": "text", "text": "and?"},
                        ],
                    },
                ],
                "tools": [{"name": "f", "input_schema": {"type": "object"}}],
                "tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
                "stop_sequences": ["X"],
            }
        )
    )
    assert [m.role for m in request.messages] == [
        Role.SYSTEM,
        Role.USER,
        Role.ASSISTANT,
        Role.TOOL,
        Role.USER,
    ]
    assert request.messages[1].content[1] == ImagePart(url="data:image/png;base64,AA==")
    assert request.messages[2].tool_calls == (ToolCall("tu1", "f", '{"a":1}'),)
    assert request.messages[3].tool_call_id == "tu1" and request.messages[3].text == "Error: done"
    assert request.tool_choice == NamedToolChoice("f") and request.parallel_tool_calls is False
    assert (request.max_output_tokens, request.stop) == (50, ("X",))


def test_misplaced_blocks_are_refused() -> None:
    with pytest.raises(WireRequestError):
        to_chat_request(
            parse(
                {
                    "model": "m",
                    "max_tokens": 1,
                    "messages": [
                        {
                            "role": "user",
                            "content": [{"type": "tool_use", "id": "x", "name": "f", "input": {}}],
                        }
                    ],
                }
            )
        )


def test_message_body_counts_cache_apart() -> None:
    response = ChatResponse(
        text="hi",
        tool_calls=(ToolCall("tu1", "f", '{"a":1}'),),
        finish_reason=FinishReason.TOOL_CALLS,
        usage=Usage(input_tokens=10, output_tokens=3, cached_input_tokens=4, cache_write_tokens=1),
        model="m",
    )
    body = orjson.loads(message_body(response, message_id="msg_1", model="openai/gpt-4o-mini"))
    assert body["content"] == [
        {"type": "text", "text": "hi"},
        {"type": "tool_use", "id": "tu1", "name": "f", "input": {"a": 1}},
    ]
    assert body["stop_reason"] == "tool_use"
    assert body["usage"] == {
        "input_tokens": 5,
        "output_tokens": 3,
        "cache_read_input_tokens": 4,
        "cache_creation_input_tokens": 1,
    }


def test_event_encoder_sequences_blocks() -> None:
    enc = MessageEventEncoder(message_id="msg_1", model="m")
    raw = enc.start()
    for event in (
        TextDelta("a"),
        TextDelta("b"),
        ToolCallStart(0, "tu1", "f"),
        ToolCallDone(0, ToolCall("tu1", "f", '{"x":2}')),
        UsageUpdate(Usage(5, 2)),
        Finish(FinishReason.TOOL_CALLS),
    ):
        raw += enc.encode(event)
    raw += enc.end()
    events = [
        (frame.split(b"\n")[0][7:].decode(), orjson.loads(frame.split(b"\n")[1][6:]))
        for frame in raw.split(b"\n\n")
        if frame
    ]
    names = [n for n, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[5][1]["index"] == 1 and events[5][1]["content_block"]["type"] == "tool_use"
    assert events[6][1]["delta"] == {"type": "input_json_delta", "partial_json": '{"x":2}'}
    assert events[8][1]["delta"]["stop_reason"] == "tool_use"
    assert events[8][1]["usage"]["output_tokens"] == 2
