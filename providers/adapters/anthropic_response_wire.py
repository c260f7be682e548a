"""Anthropic Messages response → normalized types. Pure; no I/O.

A refusal (`stop_reason: "refusal"`) is a typed result, not an error: finish reason
`content_filter`, `refusal` set to the provider's explanation when it gives one. When the request
used the forced structured-output tool, that tool's input becomes the response text (compact JSON)
and `parsed`; validating it against the schema is the adapter's job. `thinking` and
`redacted_thinking` blocks become the response's `reasoning` (readable text plus the blocks as
artifacts tagged with `origin`, for replay).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from providers.contract import ErrorClass, ProviderId
from providers.errors import ProviderError
from providers.types import (
    ChatResponse,
    FinishReason,
    Reasoning,
    ReasoningArtifact,
    RedactedThinking,
    ThinkingBlock,
    ToolCall,
    Usage,
)

from .anthropic_wire import ORIGIN

_FINISH: Mapping[str, FinishReason] = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "tool_use": FinishReason.TOOL_CALLS,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "refusal": FinishReason.CONTENT_FILTER,
    "pause_turn": FinishReason.PAUSE,
}

JSON = dict[str, Any]


def finish_reason(stop_reason: str | None, *, structured: bool = False) -> FinishReason:
    """Normalize a `stop_reason`; the forced structured-output tool call is a plain stop."""
    reason = _FINISH.get(stop_reason or "", FinishReason.STOP)
    if structured and reason is FinishReason.TOOL_CALLS:
        return FinishReason.STOP
    return reason


def _count(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) else 0


def usage_from_wire(usage: Mapping[str, Any]) -> Usage:
    """`input_tokens` on the wire excludes cache reads and writes; ours is the whole prompt."""
    cache_write = _count(usage, "cache_creation_input_tokens")
    cache_read = _count(usage, "cache_read_input_tokens")
    return Usage(
        input_tokens=_count(usage, "input_tokens") + cache_write + cache_read,
        output_tokens=_count(usage, "output_tokens"),
        cached_input_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _refusal(body: Mapping[str, Any], text: str) -> str:
    details = body.get("stop_details")
    if isinstance(details, Mapping):
        explanation = details.get("explanation") or details.get("category")
        if isinstance(explanation, str) and explanation:
            return explanation
    return text or "refused"


def reasoning_artifact(block: Mapping[str, Any], origin: str) -> ReasoningArtifact | None:
    """A thinking-kind content block as an artifact; None for any other block."""
    kind = block.get("type")
    if kind == "thinking":
        return ThinkingBlock(
            origin=origin,
            thinking=str(block.get("thinking") or ""),
            signature=str(block.get("signature") or ""),
        )
    if kind == "redacted_thinking":
        return RedactedThinking(origin=origin, data=str(block.get("data") or ""))
    return None


def parse_response(
    body: Mapping[str, Any], *, structured_tool: str | None = None, origin: str = ORIGIN
) -> ChatResponse:
    """A non-streaming `Message` body → `ChatResponse`.

    Raises `ProviderError(SERVER_ERROR)` when the body is not a Message at all.
    """
    if body.get("type") != "message" or not isinstance(body.get("content"), list):
        raise ProviderError(
            ErrorClass.SERVER_ERROR,
            "response is not an Anthropic message",
            provider=ProviderId.ANTHROPIC.value,
        )
    texts: list[str] = []
    calls: list[ToolCall] = []
    structured: Any = None
    artifacts: list[ReasoningArtifact] = []
    for block in body["content"]:
        kind = block.get("type")
        artifact = reasoning_artifact(block, origin)
        if artifact is not None:
            artifacts.append(artifact)
        elif kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            arguments = block.get("input") or {}
            if structured_tool is not None and block.get("name") == structured_tool:
                structured = arguments
            else:
                calls.append(ToolCall(id=block["id"], name=block["name"], arguments=compact_json(arguments)))
    text = "".join(texts)
    stop_reason = body.get("stop_reason")
    reason = finish_reason(stop_reason, structured=structured_tool is not None)
    refusal = _refusal(body, text) if stop_reason == "refusal" else None
    if structured is not None:
        text = compact_json(structured)
    return ChatResponse(
        text=text,
        tool_calls=tuple(calls),
        finish_reason=reason,
        usage=usage_from_wire(body.get("usage") or {}),
        model=str(body.get("model", "")),
        refusal=refusal,
        response_id=body.get("id"),
        parsed=structured,
        reasoning=Reasoning(
            text="".join(a.thinking for a in artifacts if isinstance(a, ThinkingBlock)),
            artifacts=tuple(artifacts),
        ),
    )
