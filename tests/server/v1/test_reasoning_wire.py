"""Reasoning artifacts to API clients and back (server/v1/reasoning_wire.py), no sockets."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from providers.types import (
    ChatResponse,
    FinishReason,
    Reasoning,
    ReasoningArtifact,
    ReasoningContent,
    ReasoningDetail,
    RedactedThinking,
    ThinkingBlock,
    ThoughtSignature,
    Usage,
)
from server.v1.anthropic_translate import reasoning_blocks
from server.v1.openai_translate import completion_body, to_chat_request
from server.v1.openai_wire import ChatCompletionRequest
from server.v1.reasoning_wire import artifact, detail, pack, unpack

OPENROUTER = "openai-chat:openrouter"
GEMINI = "gemini-generate:gemini"
OPENROUTER_ENTRY = {
    "type": "reasoning.text",
    "text": "Paris: call get_weather.",
    "signature": "sig-or",
    "id": None,
    "format": "anthropic-claude-v1",
    "index": 0,
}
ARTIFACTS: list[ReasoningArtifact] = [
    ThinkingBlock("anthropic-messages:anthropic", "hmm", "sig-a"),
    RedactedThinking("anthropic-messages:anthropic", "opaque"),
    ThoughtSignature(GEMINI, "sig-g", tool_call_id="call_1"),
    ReasoningContent("openai-chat:moonshot", "kimi"),
    ReasoningDetail(OPENROUTER, OPENROUTER_ENTRY),
]


def test_openrouter_detail_is_an_entry_of_its_own_with_the_provider_format_inside() -> None:
    entry = detail(ReasoningDetail(OPENROUTER, OPENROUTER_ENTRY))
    assert entry == {"type": "reasoning_detail", "detail": OPENROUTER_ENTRY, "format": OPENROUTER}
    assert artifact(orjson.loads(orjson.dumps(entry))) == ReasoningDetail(OPENROUTER, OPENROUTER_ENTRY)


@pytest.mark.parametrize("item", ARTIFACTS, ids=lambda a: type(a).__name__)
def test_every_artifact_survives_the_json_round_trip(item: ReasoningArtifact) -> None:
    assert artifact(orjson.loads(orjson.dumps(detail(item)))) == item


@pytest.mark.parametrize(
    "entry",
    [
        {"type": "reasoning_detail", "format": OPENROUTER},
        {"type": "reasoning_detail", "detail": "text", "format": OPENROUTER},
        {"type": "reasoning_detail", "detail": {}, "format": OPENROUTER},
        {"type": "reasoning_detail", "detail": OPENROUTER_ENTRY},
    ],
)
def test_a_malformed_detail_entry_is_ignored(entry: dict[str, Any]) -> None:
    assert artifact(entry) is None


def test_messages_surface_packs_and_unpacks_a_detail() -> None:
    reasoning = Reasoning(text="Paris: call get_weather.", artifacts=tuple(ARTIFACTS))
    blocks = reasoning_blocks(reasoning)
    assert [b["type"] for b in blocks] == ["thinking", "redacted_thinking", "thinking"]
    assert unpack(blocks[-1]["signature"]) == tuple(ARTIFACTS[2:])
    assert unpack(pack([ARTIFACTS[-1]])) == (ARTIFACTS[-1],)


def assistant_turn(**extra: Any) -> dict[str, Any]:
    call: dict[str, Any] = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    call.update(extra.pop("call", {}))
    return {"role": "assistant", "content": None, "tool_calls": [call], **extra}


def assistant_reasoning(message: dict[str, Any]) -> Reasoning:
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "weather?"},
            message,
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
    }
    return (
        to_chat_request(ChatCompletionRequest.model_validate_json(orjson.dumps(body))).messages[1].reasoning
    )


def test_gemini_compatible_extra_content_signature_is_bound_to_its_call() -> None:
    google = {"extra_content": {"google": {"thought_signature": "sig-g"}}}
    reasoning = assistant_reasoning(assistant_turn(call=google))
    assert reasoning.artifacts == (ThoughtSignature(GEMINI, "sig-g", tool_call_id="call_1"),)
    # Sent both ways (our entry and Google's field), it counts once.
    both = assistant_turn(call=google, reasoning_details=[detail(ARTIFACTS[2])])
    assert assistant_reasoning(both).artifacts == (ARTIFACTS[2],)


@pytest.mark.parametrize(
    "extra",
    [{"google": {}}, {"google": {"thought_signature": ""}}, {"google": "sig"}, {"other": {"x": 1}}],
)
def test_other_extra_content_carries_nothing(extra: dict[str, Any]) -> None:
    assert assistant_reasoning(assistant_turn(call={"extra_content": extra})) == Reasoning()


def test_completion_body_carries_the_detail() -> None:
    response = ChatResponse(
        text="hi",
        tool_calls=(),
        finish_reason=FinishReason.STOP,
        usage=Usage(),
        model="m",
        reasoning=Reasoning(text="Paris: call get_weather.", artifacts=(ARTIFACTS[-1],)),
    )
    message = orjson.loads(completion_body(response, completion_id="c", model="m"))["choices"][0]["message"]
    assert message["reasoning_content"] == "Paris: call get_weather."
    assert message["reasoning_details"] == [detail(ARTIFACTS[-1])]
