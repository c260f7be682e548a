"""Reasoning artifacts through the pure wire translations of each adapter (no sockets)."""

from __future__ import annotations

from typing import Any

from providers.adapters import anthropic_wire, gemini_wire
from providers.adapters.anthropic_response_wire import parse_response as parse_anthropic
from providers.adapters.anthropic_stream_wire import AnthropicStreamTranslator
from providers.adapters.gemini_response_wire import parse_response as parse_gemini
from providers.adapters.gemini_stream_wire import GeminiStreamTranslator
from providers.adapters.openai_quirks import OpenAIQuirks
from providers.adapters.openai_translate import StreamTranslator
from providers.adapters.openai_translate import build_request as build_openai
from providers.adapters.openai_translate import parse_response as parse_openai
from providers.types import (
    ChatRequest,
    Message,
    Reasoning,
    ReasoningArtifactDone,
    ReasoningConfig,
    ReasoningContent,
    ReasoningDelta,
    ReasoningDetail,
    RedactedThinking,
    Role,
    StreamEvent,
    TextDelta,
    TextPart,
    ThinkingBlock,
    ThoughtSignature,
    ToolCall,
    ToolCallStart,
)

ANTHROPIC = "anthropic-messages:anthropic"
GEMINI = "gemini-generate:gemini"
KIMI = "openai-chat:moonshot"
OPENROUTER = "openai-chat:openrouter"
SIGNED = {
    "type": "reasoning.text",
    "text": "thoughts",
    "signature": "sig-or",
    "id": None,
    "format": "anthropic-claude-v1",
    "index": 0,
}
ENCRYPTED = {"type": "reasoning.encrypted", "data": "blob", "id": "rs_1", "format": "unknown", "index": 1}
CALL = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')


def conversation(history: Reasoning, **kwargs: Any) -> ChatRequest:
    return ChatRequest(
        model="m",
        messages=(
            Message(Role.USER, (TextPart("weather?"),)),
            Message(Role.ASSISTANT, (TextPart("Checking."),), tool_calls=(CALL,), reasoning=history),
            Message(Role.TOOL, (TextPart("sunny"),), tool_call_id="call_1"),
        ),
        **kwargs,
    )


MIXED = Reasoning(
    text="thoughts",
    artifacts=(
        ThinkingBlock(ANTHROPIC, "thoughts", "sig-a"),
        RedactedThinking(ANTHROPIC, "opaque"),
        ThoughtSignature(GEMINI, "sig-g", tool_call_id="call_1"),
        ThoughtSignature(GEMINI, "sig-text"),
        ReasoningContent(KIMI, "kimi thoughts"),
        ReasoningDetail(OPENROUTER, SIGNED),
        ReasoningDetail(OPENROUTER, ENCRYPTED),
    ),
)


def test_anthropic_replays_only_its_own_blocks_first_in_the_turn() -> None:
    body = anthropic_wire.build_request(conversation(MIXED)).body
    assert body["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "thoughts", "signature": "sig-a"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
    ]
    foreign = anthropic_wire.build_request(conversation(MIXED), origin="anthropic-messages:other").body
    assert [b["type"] for b in foreign["messages"][1]["content"]] == ["text", "tool_use"]


def test_anthropic_thinking_config_fits_max_tokens() -> None:
    body = anthropic_wire.build_request(
        conversation(MIXED, reasoning=ReasoningConfig(effort="high"), temperature=0.5),
        version="2023-06-01",
    ).body
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 4095}
    assert "temperature" not in body
    tight = ChatRequest(model="m", messages=(), max_output_tokens=1000, reasoning=ReasoningConfig())
    assert "thinking" not in anthropic_wire.build_request(tight).body


def test_anthropic_response_and_stream_carry_thinking() -> None:
    body = {
        "type": "message",
        "id": "msg_1",
        "model": "claude",
        "stop_reason": "tool_use",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "redacted_thinking", "data": "blob"},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
        ],
        "usage": {"input_tokens": 1, "output_tokens": 2},
    }
    response = parse_anthropic(body, origin=ANTHROPIC)
    assert response.reasoning == Reasoning(
        text="hmm", artifacts=(ThinkingBlock(ANTHROPIC, "hmm", "sig"), RedactedThinking(ANTHROPIC, "blob"))
    )
    translator = AnthropicStreamTranslator(origin=ANTHROPIC)
    events: list[StreamEvent] = []
    feed = [
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "h"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "mm"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "redacted_thinking", "data": "b"},
        },
        {"type": "content_block_stop", "index": 1},
    ]
    for data in feed:
        events += translator.feed(str(data["type"]), data)
    assert events == [
        ReasoningDelta("h"),
        ReasoningDelta("mm"),
        ReasoningArtifactDone(ThinkingBlock(ANTHROPIC, "hmm", "sig")),
        ReasoningArtifactDone(RedactedThinking(ANTHROPIC, "b")),
    ]


def test_gemini_signatures_go_back_on_their_parts_and_foreign_calls_get_the_dummy() -> None:
    parts = gemini_wire.build_request(conversation(MIXED))["contents"][1]["parts"]
    assert parts == [
        {"text": "Checking.", "thoughtSignature": "sig-text"},
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "sig-g"},
    ]
    foreign = gemini_wire.build_request(conversation(MIXED), origin="gemini-generate:vertex")["contents"][1]
    assert foreign["parts"] == [
        {"text": "Checking."},
        {
            "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
            "thoughtSignature": gemini_wire.DUMMY_THOUGHT_SIGNATURE,
        },
    ]


def test_gemini_thinking_config() -> None:
    body = gemini_wire.build_request(conversation(Reasoning(), reasoning=ReasoningConfig(budget_tokens=1000)))
    assert body["generationConfig"]["thinkingConfig"] == {"includeThoughts": True, "thinkingBudget": 1000}


GEMINI_BODY = {
    "responseId": "r1",
    "candidates": [
        {
            "finishReason": "STOP",
            "content": {
                "role": "model",
                "parts": [
                    {"text": "planning", "thought": True},
                    {
                        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                        "thoughtSignature": "s1",
                    },
                    {"functionCall": {"name": "get_time", "args": {}}},
                ],
            },
        }
    ],
    "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3, "thoughtsTokenCount": 7},
}


def test_gemini_response_and_stream_bind_the_signature_to_its_call() -> None:
    response = parse_gemini(GEMINI_BODY, origin=GEMINI)
    first = response.tool_calls[0]
    assert response.reasoning == Reasoning(
        text="planning", artifacts=(ThoughtSignature(GEMINI, "s1", tool_call_id=first.id),)
    )
    assert response.usage.reasoning_tokens == 7 and response.usage.output_tokens == 10
    events = GeminiStreamTranslator(origin=GEMINI).feed(GEMINI_BODY)
    assert events[:3] == [
        ReasoningDelta("planning"),
        ReasoningArtifactDone(ThoughtSignature(GEMINI, "s1", tool_call_id=first.id)),
        ToolCallStart(index=0, id=first.id, name="get_weather"),
    ]
    # A signature that arrives on an empty text part still counts.
    empty = {"candidates": [{"content": {"parts": [{"text": "", "thoughtSignature": "s2"}]}}]}
    assert GeminiStreamTranslator(origin=GEMINI).feed(empty) == [
        ReasoningArtifactDone(ThoughtSignature(GEMINI, "s2"))
    ]


def test_openai_reasoning_content_is_replayed_only_to_its_origin() -> None:
    quirks = OpenAIQuirks()
    kimi = build_openai(conversation(MIXED), quirks, origin=KIMI)["messages"][1]
    assert kimi["reasoning_content"] == "kimi thoughts"
    assert "reasoning_details" not in kimi
    other = build_openai(conversation(MIXED), quirks, origin="openai-chat:openai")["messages"][1]
    assert "reasoning_content" not in other and "reasoning_details" not in other
    effort = build_openai(conversation(Reasoning(), reasoning=ReasoningConfig(effort="low")), quirks)
    assert effort["reasoning_effort"] == "low"


def test_openai_response_and_stream_read_reasoning_content() -> None:
    body = {
        "model": "kimi",
        "choices": [
            {
                "message": {"role": "assistant", "content": "hi", "reasoning_content": "think"},
                "finish_reason": "stop",
            }
        ],
    }
    assert parse_openai(body, origin=KIMI).reasoning == Reasoning(
        text="think", artifacts=(ReasoningContent(KIMI, "think"),)
    )
    openrouter = {
        "choices": [{"message": {"content": "hi", "reasoning": "readable"}, "finish_reason": "stop"}]
    }
    assert parse_openai(openrouter).reasoning == Reasoning(text="readable")
    translator = StreamTranslator(origin=KIMI)
    events = translator.feed({"choices": [{"delta": {"reasoning_content": "thi"}}]})
    events += translator.feed({"choices": [{"delta": {"reasoning_content": "nk"}, "finish_reason": "stop"}]})
    assert events == [
        ReasoningDelta("thi"),
        ReasoningDelta("nk"),
        ReasoningArtifactDone(ReasoningContent(KIMI, "think")),
    ]


def test_openrouter_reasoning_details_are_replayed_verbatim_in_order_only_to_their_origin() -> None:
    quirks = OpenAIQuirks()
    replayed = build_openai(conversation(MIXED), quirks, origin=OPENROUTER)["messages"]
    assert replayed[1]["reasoning_details"] == [SIGNED, ENCRYPTED]
    assert "reasoning_content" not in replayed[1]
    assert all("reasoning_details" not in m for m in (replayed[0], replayed[2]))
    foreign = build_openai(conversation(MIXED), quirks, origin="openai-chat:openrouter-eu")["messages"][1]
    assert "reasoning_details" not in foreign


def test_openrouter_response_keeps_each_detail_and_reads_text_once() -> None:
    message = {
        "role": "assistant",
        "content": "hi",
        "reasoning": "thoughts",
        "reasoning_details": [SIGNED, "not an entry", ENCRYPTED],
    }
    body = {"choices": [{"message": message, "finish_reason": "stop"}]}
    assert parse_openai(body, origin=OPENROUTER).reasoning == Reasoning(
        text="thoughts",
        artifacts=(ReasoningDetail(OPENROUTER, SIGNED), ReasoningDetail(OPENROUTER, ENCRYPTED)),
    )
    both = {"reasoning_content": "think", "reasoning_details": [ENCRYPTED]}
    assert parse_openai({"choices": [{"message": both}]}, origin=KIMI).reasoning == Reasoning(
        text="think", artifacts=(ReasoningContent(KIMI, "think"), ReasoningDetail(KIMI, ENCRYPTED))
    )
    # A details field that is not a list carries nothing.
    odd = {"reasoning": "r", "reasoning_details": {"type": "reasoning.text"}}
    assert parse_openai({"choices": [{"message": odd}]}).reasoning == Reasoning(text="r")


def test_openrouter_stream_merges_detail_pieces_by_index() -> None:
    """Pieces of two entries interleave; text concatenates, nulls never overwrite, order is by index."""
    head = {"type": "reasoning.text", "id": None, "signature": None, "format": "anthropic-claude-v1"}
    feed: list[dict[str, Any]] = [
        {"reasoning": "tho", "reasoning_details": [head | {"text": "tho", "index": 0}]},
        {"reasoning_details": [ENCRYPTED | {"data": None, "index": 1}]},
        {"reasoning": "ughts", "reasoning_details": [head | {"text": "ughts", "index": 0}]},
        {"reasoning_details": [{"type": "reasoning.encrypted", "data": "blob", "id": None, "index": 1}]},
        {"reasoning_details": [head | {"text": "", "signature": "sig-or", "index": 0}]},
        {"content": "hi"},
    ]
    translator = StreamTranslator(origin=OPENROUTER)
    events: list[StreamEvent] = []
    for delta in feed:
        events += translator.feed({"choices": [{"delta": delta}]})
    assert events == [ReasoningDelta("tho"), ReasoningDelta("ughts"), TextDelta("hi")]
    assert translator.finish()[:2] == [
        ReasoningArtifactDone(ReasoningDetail(OPENROUTER, SIGNED)),
        ReasoningArtifactDone(ReasoningDetail(OPENROUTER, ENCRYPTED)),
    ]


def test_stream_details_come_after_reasoning_content_at_the_finish_reason() -> None:
    translator = StreamTranslator(origin=KIMI)
    events = translator.feed({"choices": [{"delta": {"reasoning_content": "think"}}]})
    events += translator.feed(
        {"choices": [{"delta": {"reasoning_details": [ENCRYPTED]}, "finish_reason": "stop"}]}
    )
    assert events == [
        ReasoningDelta("think"),
        ReasoningArtifactDone(ReasoningContent(KIMI, "think")),
        ReasoningArtifactDone(ReasoningDetail(KIMI, ENCRYPTED)),
    ]
