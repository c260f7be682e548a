"""Gemini `GenerateContentResponse` → normalized types. Pure.

Decisions worth knowing:
- A blocked prompt (HTTP 200, no candidates, `promptFeedback.blockReason`) is a typed
  result, not an exception: finish reason `content_filter` and `refusal` naming the reason.
  That matches how a refused *answer* is reported by every adapter, so callers handle one
  shape, and the router's policy for `content_filter` (fail fast) applies either way.
- `finishReason` stays `STOP` when the model calls tools; the presence of `functionCall`
  parts makes it `tool_calls`.
- Gemini calls carry no id on most models, so ids are synthesized deterministically from the
  response id, the call's position, name and arguments: replaying the same response gives the
  same ids, different responses give different ones. A provider-sent `id` is kept.
- Parts marked `thought: true` (thought summaries) are not answer text: they are the readable
  reasoning. A part's `thoughtSignature` becomes a `ThoughtSignature` artifact tagged with
  `origin`, bound to the call when it came on a `functionCall` part, else to the turn's text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from providers.contract import ErrorClass, ProviderId
from providers.errors import ProviderError
from providers.types import ChatResponse, FinishReason, Reasoning, ThoughtSignature, ToolCall, Usage

from .gemini_wire import ORIGIN

_FINISH: Mapping[str, FinishReason] = {
    "STOP": FinishReason.STOP,
    "MAX_TOKENS": FinishReason.LENGTH,
    **dict.fromkeys(
        (
            "SAFETY",
            "RECITATION",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "SPII",
            "IMAGE_SAFETY",
            "IMAGE_PROHIBITED_CONTENT",
            "IMAGE_RECITATION",
        ),
        FinishReason.CONTENT_FILTER,
    ),
}


def finish_reason(raw: str | None, *, has_calls: bool) -> FinishReason:
    """Normalize a `finishReason`; unknown and error-like reasons map to `error`."""
    if raw in (None, "", "STOP", "FINISH_REASON_UNSPECIFIED"):
        return FinishReason.TOOL_CALLS if has_calls else FinishReason.STOP
    return _FINISH.get(str(raw), FinishReason.ERROR)


def _count(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) else 0


def usage_from_wire(usage: Mapping[str, Any]) -> Usage:
    """Zero-valued fields are omitted on the wire; absent means 0."""
    thoughts = _count(usage, "thoughtsTokenCount")
    return Usage(
        input_tokens=_count(usage, "promptTokenCount") + _count(usage, "toolUsePromptTokenCount"),
        output_tokens=_count(usage, "candidatesTokenCount") + thoughts,
        cached_input_tokens=_count(usage, "cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def tool_call_id(response_id: str, position: int, name: str, arguments: str) -> str:
    digest = hashlib.sha256(f"{response_id}\x00{position}\x00{name}\x00{arguments}".encode()).hexdigest()
    return f"call_{digest[:24]}"


def function_call(part: Mapping[str, Any], *, response_id: str, position: int) -> ToolCall:
    call = part["functionCall"]
    name = str(call.get("name", ""))
    arguments = compact_json(call.get("args") or {})
    given = call.get("id")
    call_id = (
        given if isinstance(given, str) and given else tool_call_id(response_id, position, name, arguments)
    )
    return ToolCall(id=call_id, name=name, arguments=arguments)


def block_reason(body: Mapping[str, Any]) -> str | None:
    """The prompt's block reason when the prompt itself was refused."""
    feedback = body.get("promptFeedback")
    if isinstance(feedback, Mapping) and feedback.get("blockReason"):
        return str(feedback["blockReason"])
    return None


def blocked_refusal(body: Mapping[str, Any], reason: str) -> str:
    feedback = body.get("promptFeedback") or {}
    message = feedback.get("blockReasonMessage")
    return f"prompt blocked ({reason})" + (f": {message}" if isinstance(message, str) and message else "")


def candidate_parts(candidate: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    return [p for p in parts if isinstance(p, Mapping)] if isinstance(parts, list) else []


def thought_signature(part: Mapping[str, Any], call: ToolCall | None, origin: str) -> ThoughtSignature | None:
    signature = part.get("thoughtSignature")
    if not isinstance(signature, str) or not signature:
        return None
    return ThoughtSignature(origin=origin, signature=signature, tool_call_id=call.id if call else None)


def thought_text(part: Mapping[str, Any]) -> str:
    """The readable text of a thought-summary part, else empty."""
    text = part.get("text")
    return text if part.get("thought") and isinstance(text, str) else ""


def parse_response(body: Mapping[str, Any], *, model: str = "", origin: str = ORIGIN) -> ChatResponse:
    """A non-streaming `GenerateContentResponse` → `ChatResponse` (first candidate only)."""
    usage = usage_from_wire(body.get("usageMetadata") or {})
    response_id = str(body.get("responseId") or "")
    model_version = str(body.get("modelVersion") or model)
    candidates = body.get("candidates")
    if not candidates:
        reason = block_reason(body)
        if reason is None:
            raise ProviderError(
                ErrorClass.SERVER_ERROR,
                "response has no candidates",
                provider=ProviderId.GEMINI.value,
                model=model,
            )
        return ChatResponse(
            text="",
            tool_calls=(),
            finish_reason=FinishReason.CONTENT_FILTER,
            usage=usage,
            model=model_version,
            refusal=blocked_refusal(body, reason),
            response_id=response_id or None,
        )
    candidate = candidates[0]
    texts: list[str] = []
    thoughts: list[str] = []
    signatures: list[ThoughtSignature] = []
    calls: list[ToolCall] = []
    for part in candidate_parts(candidate):
        call = None
        if "functionCall" in part:
            call = function_call(part, response_id=response_id, position=len(calls))
            calls.append(call)
        elif part.get("thought"):
            thoughts.append(thought_text(part))
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
        signature = thought_signature(part, call, origin)
        if signature is not None:
            signatures.append(signature)
    reason = finish_reason(candidate.get("finishReason"), has_calls=bool(calls))
    text = "".join(texts)
    refusal = None
    if reason is FinishReason.CONTENT_FILTER:
        refusal = f"response blocked ({candidate.get('finishReason')})"
    return ChatResponse(
        text=text,
        tool_calls=tuple(calls),
        finish_reason=reason,
        usage=usage,
        model=model_version,
        refusal=refusal,
        response_id=response_id or None,
        reasoning=Reasoning(text="".join(thoughts), artifacts=tuple(signatures)),
    )
