"""How reasoning artifacts travel to API clients and back (docs/api.md, "Reasoning"). Pure.

On `/v1/chat/completions` an assistant message carries `reasoning_content` (the readable text,
for display) and `reasoning_details`: one entry per artifact, typed by the provider-native name
of what it carries and tagged with its origin in `format`:

    {"type": "thinking", "thinking": "...", "signature": "...", "format": "anthropic-messages:anthropic"}
    {"type": "redacted_thinking", "data": "...", "format": "anthropic-messages:anthropic"}
    {"type": "thought_signature", "signature": "...", "tool_call_id": "call_..." | null,
     "format": "gemini-generate:gemini"}
    {"type": "reasoning_content", "text": "...", "format": "openai-chat:moonshot"}
    {"type": "reasoning_detail", "detail": {"type": "reasoning.text", ...}, "format": "openai-chat:openrouter"}

A `reasoning_detail` carries an OpenRouter `reasoning_details` entry as OpenRouter sent it (its own
`format`, such as `anthropic-claude-v1`, stays inside `detail`).

On assistant tool calls Patchbay also accepts the field of Gemini's OpenAI-compatible endpoint,
`extra_content.google.thought_signature` (`google_signature`): clients written against that
endpoint send the signature back there.

Clients treat entries as opaque and send the message back as they got it. An entry that is not
understood is ignored rather than refused: it can only have come from a newer Patchbay, and
dropping an artifact costs reasoning continuity, not correctness of the request.

On `/v1/messages` the artifacts that are not native Anthropic thinking blocks travel inside a
`thinking` block whose `signature` is `SIGNATURE_PREFIX` + the base64url JSON of their entries
(`pack` / `unpack`), so the anthropic SDKs keep them like any other thinking block.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from providers.contract import ProviderId, WireProtocol
from providers.types import (
    ReasoningArtifact,
    ReasoningContent,
    ReasoningDetail,
    RedactedThinking,
    ThinkingBlock,
    ThoughtSignature,
    reasoning_origin,
)

SIGNATURE_PREFIX = "patchbay.v1."

GEMINI = reasoning_origin(WireProtocol.GEMINI_GENERATE, ProviderId.GEMINI)
"""The origin of a signature sent back the way Gemini's OpenAI-compatible endpoint returns it."""

JSON = dict[str, Any]


def detail(artifact: ReasoningArtifact) -> JSON:
    """One `reasoning_details` entry."""
    if isinstance(artifact, ThinkingBlock):
        body: JSON = {"type": "thinking", "thinking": artifact.thinking, "signature": artifact.signature}
    elif isinstance(artifact, RedactedThinking):
        body = {"type": "redacted_thinking", "data": artifact.data}
    elif isinstance(artifact, ThoughtSignature):
        body = {
            "type": "thought_signature",
            "signature": artifact.signature,
            "tool_call_id": artifact.tool_call_id,
        }
    elif isinstance(artifact, ReasoningContent):
        body = {"type": "reasoning_content", "text": artifact.text}
    else:
        body = {"type": "reasoning_detail", "detail": dict(artifact.detail)}
    body["format"] = artifact.origin
    return body


def _str(entry: Mapping[str, Any], key: str) -> str | None:
    value = entry.get(key)
    return value if isinstance(value, str) else None


def artifact(entry: Mapping[str, Any]) -> ReasoningArtifact | None:
    """The artifact an entry carries; None for an entry this version does not understand."""
    origin = _str(entry, "format")
    if not origin:
        return None
    kind = entry.get("type")
    if kind == "thinking":
        thinking, signature = _str(entry, "thinking"), _str(entry, "signature")
        if thinking is not None and signature is not None:
            return ThinkingBlock(origin=origin, thinking=thinking, signature=signature)
    elif kind == "redacted_thinking":
        data = _str(entry, "data")
        if data is not None:
            return RedactedThinking(origin=origin, data=data)
    elif kind == "thought_signature":
        signature = _str(entry, "signature")
        if signature:
            return ThoughtSignature(
                origin=origin, signature=signature, tool_call_id=_str(entry, "tool_call_id")
            )
    elif kind == "reasoning_content":
        text = _str(entry, "text")
        if text:
            return ReasoningContent(origin=origin, text=text)
    elif kind == "reasoning_detail":
        entry_detail = entry.get("detail")
        if isinstance(entry_detail, dict) and entry_detail:
            return ReasoningDetail(origin=origin, detail=entry_detail)
    return None


def artifacts(entries: Iterable[Mapping[str, Any]]) -> tuple[ReasoningArtifact, ...]:
    return tuple(a for a in map(artifact, entries) if a is not None)


def google_signature(call_id: str, extra_content: Mapping[str, Any] | None) -> ThoughtSignature | None:
    """The signature in a tool call's `extra_content.google.thought_signature`, bound to that call."""
    google = (extra_content or {}).get("google")
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    if not isinstance(signature, str) or not signature:
        return None
    return ThoughtSignature(origin=GEMINI, signature=signature, tool_call_id=call_id)


def pack(items: Iterable[ReasoningArtifact]) -> str:
    """Artifacts as the `signature` of a Patchbay thinking block on `/v1/messages`."""
    raw = orjson.dumps([detail(a) for a in items])
    return SIGNATURE_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unpack(signature: str) -> tuple[ReasoningArtifact, ...] | None:
    """The artifacts of a Patchbay signature; None when `signature` is not one (a native block)."""
    if not signature.startswith(SIGNATURE_PREFIX):
        return None
    encoded = signature.removeprefix(SIGNATURE_PREFIX)
    try:
        entries = orjson.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (binascii.Error, ValueError):
        return ()
    if not isinstance(entries, list):
        return ()
    return artifacts(e for e in entries if isinstance(e, dict))
