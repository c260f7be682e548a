"""Gemini stream chunks → normalized stream events: pure translation, no sockets."""

from __future__ import annotations

from typing import Any

import pytest

from providers.adapters.gemini_response_wire import parse_response
from providers.adapters.gemini_stream_wire import GeminiStreamTranslator
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


def chunk(
    parts: list[dict[str, Any]] | None, finish: str | None = None, usage: dict[str, int] | None = None
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"index": 0}
    if parts is not None:
        candidate["content"] = {"role": "model", "parts": parts}
    if finish:
        candidate["finishReason"] = finish
    data: dict[str, Any] = {
        "candidates": [candidate],
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp-1",
    }
    if usage:
        data["usageMetadata"] = usage
    return data


def run(chunks: list[dict[str, Any]]) -> list[StreamEvent]:
    translator = GeminiStreamTranslator()
    out: list[StreamEvent] = []
    for data in chunks:
        out += translator.feed(data)
    return out + translator.end()


def test_text_stream_with_cumulative_usage_takes_the_last() -> None:
    events = run(
        [
            chunk([{"text": "Hel"}], usage={"promptTokenCount": 5, "totalTokenCount": 5}),
            chunk([{"text": "thinking", "thought": True}]),
            chunk(
                [{"text": "lo"}],
                "STOP",
                usage={"promptTokenCount": 5, "candidatesTokenCount": 2, "thoughtsTokenCount": 3},
            ),
        ]
    )
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hel", "lo"]
    (usage,) = [e.usage for e in events if isinstance(e, UsageUpdate)]
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens) == (5, 5, 3)
    assert events[-1] == Finish(FinishReason.STOP)


def test_function_calls_arrive_whole_with_the_same_ids_as_non_streaming() -> None:
    parts = [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
        {"functionCall": {"name": "now", "args": {}}},
    ]
    events = run([chunk([{"text": "ok"}]), chunk(parts, "STOP")])
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    done = [e.call for e in events if isinstance(e, ToolCallDone)]
    assert [(s.index, s.name) for s in starts] == [(0, "get_weather"), (1, "now")]
    assert [d.arguments for d in deltas] == ['{"city":"Paris"}', "{}"]
    whole = parse_response(
        {"candidates": [{"content": {"parts": parts}, "finishReason": "STOP"}], "responseId": "resp-1"}
    )
    assert [c.id for c in done] == [c.id for c in whole.tool_calls]
    assert events[-1] == Finish(FinishReason.TOOL_CALLS)


def test_close_before_finish_reason_is_network() -> None:
    with pytest.raises(ProviderError) as caught:
        run([chunk([{"text": "partial"}])])
    assert caught.value.error_class is ErrorClass.NETWORK


def test_error_chunk_raises() -> None:
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    with pytest.raises(ProviderError) as caught:
        run([chunk([{"text": "a"}]), error])
    assert caught.value.error_class is ErrorClass.OVERLOADED


def test_blocked_prompt_and_safety_finish() -> None:
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 4}}
    assert run([blocked])[-1] == Finish(FinishReason.CONTENT_FILTER)
    assert run([chunk(None, "SAFETY")])[-1] == Finish(FinishReason.CONTENT_FILTER)
