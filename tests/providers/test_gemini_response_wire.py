"""Gemini GenerateContentResponse → ChatResponse: pure translation, no sockets."""

from __future__ import annotations

from typing import Any

import pytest

from providers.adapters.gemini_response_wire import parse_response, usage_from_wire
from providers.contract import ErrorClass
from providers.errors import ProviderError
from providers.types import FinishReason, Usage


def response(parts: list[dict[str, Any]] | None, finish: str = "STOP", **extra: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {"finishReason": finish, "index": 0}
    if parts is not None:
        candidate["content"] = {"role": "model", "parts": parts}
    return {
        "candidates": [candidate],
        "usageMetadata": {"promptTokenCount": 15, "candidatesTokenCount": 6, "totalTokenCount": 21},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp-1",
        **extra,
    }


@pytest.mark.parametrize(
    ("finish", "expected"),
    [
        ("STOP", FinishReason.STOP),
        ("MAX_TOKENS", FinishReason.LENGTH),
        ("SAFETY", FinishReason.CONTENT_FILTER),
        ("RECITATION", FinishReason.CONTENT_FILTER),
        ("BLOCKLIST", FinishReason.CONTENT_FILTER),
        ("PROHIBITED_CONTENT", FinishReason.CONTENT_FILTER),
        ("SPII", FinishReason.CONTENT_FILTER),
        ("IMAGE_SAFETY", FinishReason.CONTENT_FILTER),
        ("MALFORMED_FUNCTION_CALL", FinishReason.ERROR),
        ("UNEXPECTED_TOOL_CALL", FinishReason.ERROR),
        ("OTHER", FinishReason.ERROR),
        ("SOMETHING_NEW", FinishReason.ERROR),
    ],
)
def test_finish_reasons(finish: str, expected: FinishReason) -> None:
    assert parse_response(response([{"text": "x"}], finish)).finish_reason is expected


def test_text_skips_thoughts_and_function_calls_make_tool_calls() -> None:
    parsed = parse_response(
        response(
            [
                {"text": "planning...", "thought": True},
                {"text": "Let me check."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "now", "args": {}}},
            ]
        )
    )
    assert parsed.text == "Let me check."
    assert parsed.finish_reason is FinishReason.TOOL_CALLS
    assert [(c.name, c.parsed_arguments()) for c in parsed.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("now", {}),
    ]
    assert parsed.model == "gemini-2.5-flash" and parsed.response_id == "resp-1"


def test_tool_call_ids_are_deterministic_and_distinct() -> None:
    parts = [
        {"functionCall": {"name": "f", "args": {"a": 1}}},
        {"functionCall": {"name": "f", "args": {"a": 1}}},
    ]
    first = parse_response(response(parts)).tool_calls
    again = parse_response(response(parts)).tool_calls
    other = parse_response(response(parts, responseId="resp-2")).tool_calls
    assert [c.id for c in first] == [c.id for c in again]
    assert first[0].id != first[1].id
    assert {c.id for c in first}.isdisjoint(c.id for c in other)
    given = parse_response(response([{"functionCall": {"id": "fc_9", "name": "f", "args": {}}}])).tool_calls
    assert given[0].id == "fc_9"


def test_usage_counts_thoughts_as_output_and_tool_prompt_as_input() -> None:
    usage = usage_from_wire(
        {
            "promptTokenCount": 15,
            "toolUsePromptTokenCount": 5,
            "candidatesTokenCount": 6,
            "thoughtsTokenCount": 30,
            "cachedContentTokenCount": 4,
        }
    )
    assert usage == Usage(input_tokens=20, output_tokens=36, cached_input_tokens=4, reasoning_tokens=30)
    assert usage_from_wire({"promptTokenCount": 8, "totalTokenCount": 8}) == Usage(input_tokens=8)


def test_safety_block_has_no_content() -> None:
    parsed = parse_response(response(None, "SAFETY"))
    assert parsed.finish_reason is FinishReason.CONTENT_FILTER
    assert parsed.text == "" and parsed.refusal == "response blocked (SAFETY)"


def test_blocked_prompt_is_a_content_filter_result() -> None:
    body = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT", "blockReasonMessage": "Not allowed."},
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp-3",
    }
    parsed = parse_response(body)
    assert parsed.finish_reason is FinishReason.CONTENT_FILTER
    assert parsed.refusal == "prompt blocked (PROHIBITED_CONTENT): Not allowed."
    assert parsed.usage.input_tokens == 8 and parsed.tool_calls == ()


def test_no_candidates_and_no_block_reason_is_a_server_error() -> None:
    with pytest.raises(ProviderError) as caught:
        parse_response({"usageMetadata": {}})
    assert caught.value.error_class is ErrorClass.SERVER_ERROR
