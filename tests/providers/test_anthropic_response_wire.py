"""Anthropic Message → ChatResponse: pure translation, no sockets."""

from __future__ import annotations

from typing import Any

import pytest

from providers.adapters.anthropic_response_wire import parse_response, usage_from_wire
from providers.contract import ErrorClass
from providers.errors import ProviderError
from providers.types import FinishReason, Usage


def message(content: list[dict[str, Any]], stop_reason: str = "end_turn", **extra: Any) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 25, "output_tokens": 40},
        **extra,
    }


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", FinishReason.STOP),
        ("stop_sequence", FinishReason.STOP),
        ("tool_use", FinishReason.TOOL_CALLS),
        ("max_tokens", FinishReason.LENGTH),
        ("model_context_window_exceeded", FinishReason.LENGTH),
        ("refusal", FinishReason.CONTENT_FILTER),
        ("pause_turn", FinishReason.PAUSE),
    ],
)
def test_finish_reasons(stop_reason: str, finish: FinishReason) -> None:
    assert parse_response(message([{"type": "text", "text": "x"}], stop_reason)).finish_reason is finish


def test_text_and_tool_calls() -> None:
    response = parse_response(
        message(
            [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Let me "},
                {"type": "text", "text": "check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}},
            ],
            "tool_use",
        )
    )
    assert response.text == "Let me check."
    assert [(c.id, c.name, c.parsed_arguments()) for c in response.tool_calls] == [
        ("toolu_1", "get_weather", {"city": "Paris"}),
        ("toolu_2", "now", {}),
    ]
    assert response.response_id == "msg_1" and response.model == "claude-sonnet-4-6"


def test_usage_adds_cache_reads_and_writes_to_input() -> None:
    usage = usage_from_wire(
        {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_creation_input_tokens": 20,
            "cache_read_input_tokens": 100,
        }
    )
    assert usage == Usage(input_tokens=130, output_tokens=5, cached_input_tokens=100, cache_write_tokens=20)
    assert (
        usage_from_wire({"input_tokens": 3, "output_tokens": 1, "cache_read_input_tokens": None}).input_tokens
        == 3
    )


def test_refusal_uses_stop_details_explanation_or_text() -> None:
    details = {"type": "refusal", "category": "cyber", "explanation": "Could enable harm."}
    refused = parse_response(message([{"type": "text", "text": "I can't"}], "refusal", stop_details=details))
    assert refused.refusal == "Could enable harm."
    assert parse_response(message([{"type": "text", "text": "I can't"}], "refusal")).refusal == "I can't"
    assert parse_response(message([{"type": "text", "text": "ok"}])).refusal is None


def test_structured_tool_becomes_text_and_parsed() -> None:
    body = message(
        [
            {"type": "text", "text": "Here you go"},
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "city",
                "input": {"name": "Paris", "population": 2},
            },
        ],
        "tool_use",
    )
    response = parse_response(body, structured_tool="city")
    assert response.parsed == {"name": "Paris", "population": 2}
    assert response.text == '{"name":"Paris","population":2}'
    assert response.tool_calls == () and response.finish_reason is FinishReason.STOP


def test_structured_tool_missing_leaves_parsed_empty() -> None:
    response = parse_response(message([{"type": "text", "text": "no"}], "refusal"), structured_tool="city")
    assert response.parsed is None and response.finish_reason is FinishReason.CONTENT_FILTER


def test_non_message_body_is_a_server_error() -> None:
    with pytest.raises(ProviderError) as caught:
        parse_response({"type": "error", "error": {}})
    assert caught.value.error_class is ErrorClass.SERVER_ERROR
