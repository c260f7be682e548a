"""Anthropic named SSE events → normalized stream events: pure translation, no sockets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from providers.adapters.anthropic_stream_wire import AnthropicStreamTranslator
from providers.contract import ErrorClass
from providers.errors import ProviderError
from providers.types import (
    Finish,
    FinishReason,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStart,
    UsageUpdate,
)

START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": 25, "output_tokens": 1, "cache_read_input_tokens": 5},
    },
}


def block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def delta(index: int, payload: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": payload}


def stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def message_delta(reason: str, usage: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": None}, "usage": usage}


def run(events: list[dict[str, Any]], **kwargs: Any) -> list[StreamEvent]:
    translator = AnthropicStreamTranslator(**kwargs)
    out: list[StreamEvent] = []
    for data in events:
        out += translator.feed(data["type"], data)
    out += translator.end()
    return out


REFERENCE_STREAM = [
    START,
    {"type": "ping"},
    block_start(0, {"type": "text", "text": ""}),
    delta(0, {"type": "text_delta", "text": "Hi"}),
    stop(0),
    block_start(1, {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}),
    delta(1, {"type": "input_json_delta", "partial_json": ""}),
    delta(1, {"type": "input_json_delta", "partial_json": '{"city": "Pa'}),
    delta(1, {"type": "input_json_delta", "partial_json": 'ris"}'}),
    stop(1),
    block_start(2, {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}}),
    stop(2),
    message_delta("tool_use", {"output_tokens": 40}),
    {"type": "message_stop"},
]


def test_reference_stream() -> None:
    events = run(REFERENCE_STREAM)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hi"]
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    assert [(s.index, s.id, s.name) for s in starts] == [(0, "toolu_1", "get_weather"), (1, "toolu_2", "now")]
    # The empty fragment emits nothing.
    assert [e.arguments for e in events if isinstance(e, ToolCallDelta)] == ['{"city": "Pa', 'ris"}']
    done = {e.index: e.call for e in events if isinstance(e, ToolCallDone)}
    assert done[0].parsed_arguments() == {"city": "Paris"}
    assert done[1].arguments == "{}"
    assert events[-1] == Finish(FinishReason.TOOL_CALLS)


def test_usage_is_replaced_not_added() -> None:
    events = run(
        [
            START,
            message_delta("end_turn", {"output_tokens": 10}),
            message_delta("end_turn", {"output_tokens": 40, "input_tokens": 30}),
            {"type": "message_stop"},
        ]
    )
    usages = [e.usage for e in events if isinstance(e, UsageUpdate)]
    assert [(u.input_tokens, u.output_tokens, u.cached_input_tokens) for u in usages] == [
        (30, 1, 5),
        (30, 10, 5),
        (35, 40, 5),
    ]


def test_error_event_raises_the_mapped_class() -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with pytest.raises(ProviderError) as caught:
        run([START, block_start(0, {"type": "text", "text": ""}), error])
    assert caught.value.error_class is ErrorClass.OVERLOADED
    assert caught.value.status is None


def test_end_without_message_stop_is_network() -> None:
    with pytest.raises(ProviderError) as caught:
        run([START, message_delta("end_turn", {"output_tokens": 3})])
    assert caught.value.error_class is ErrorClass.NETWORK


def test_unknown_events_and_thinking_deltas_are_ignored() -> None:
    events = run(
        [
            START,
            {"type": "some_future_event", "x": 1},
            block_start(0, {"type": "thinking", "thinking": ""}),
            delta(0, {"type": "thinking_delta", "thinking": "hmm"}),
            delta(0, {"type": "signature_delta", "signature": "abc"}),
            stop(0),
            message_delta("end_turn", {"output_tokens": 3}),
            {"type": "message_stop"},
        ]
    )
    assert not any(isinstance(e, TextDelta | ToolCallStart) for e in events)
    assert events[-1] == Finish(FinishReason.STOP)


def test_invalid_tool_json_is_a_server_error() -> None:
    with pytest.raises(ProviderError) as caught:
        run(
            [
                START,
                block_start(0, {"type": "tool_use", "id": "t", "name": "f", "input": {}}),
                delta(0, {"type": "input_json_delta", "partial_json": '{"a": '}),
                stop(0),
            ]
        )
    assert caught.value.error_class is ErrorClass.SERVER_ERROR


def test_structured_tool_streams_as_text() -> None:
    translator = AnthropicStreamTranslator(structured_tool="city")
    events: list[StreamEvent] = []
    for data in [
        START,
        block_start(0, {"type": "tool_use", "id": "t", "name": "city", "input": {}}),
        delta(0, {"type": "input_json_delta", "partial_json": '{"name": "Ly'}),
        delta(0, {"type": "input_json_delta", "partial_json": 'on"}'}),
        stop(0),
        message_delta("tool_use", {"output_tokens": 9}),
        {"type": "message_stop"},
    ]:
        events += translator.feed(data["type"], data)
    assert json.loads("".join(e.text for e in events if isinstance(e, TextDelta))) == {"name": "Lyon"}
    assert translator.structured_text == '{"name": "Lyon"}'
    assert not any(isinstance(e, ToolCallStart | ToolCallDone) for e in events)
    assert events[-1] == Finish(FinishReason.STOP)


def test_refusal_finishes_as_content_filter() -> None:
    events = run([START, message_delta("refusal", {"output_tokens": 2}), {"type": "message_stop"}])
    assert events[-1] == Finish(FinishReason.CONTENT_FILTER)
