"""OpenRouter's reasoning, as the OpenAI emulator's `openrouter` flavour sends and checks it. Pure.

OpenRouter returns a model's thinking twice: as readable `reasoning` text, and as
`reasoning_details` entries in the upstream's own terms, each with an `id`, a `format` and an
`index`: `anthropic-claude-v1` (a `reasoning.text` carrying the thinking block's signature),
`openai-responses-v1` (a `reasoning.summary` and the encrypted reasoning item), `google-gemini-v1`
(`reasoning.text` and the thought signature as `reasoning.encrypted`), `unknown` (text only).
Streamed, an entry comes in pieces, one per delta, tied by `index`: `text` / `summary` pieces
concatenate, other fields arrive once (null elsewhere), the signature last.

Anthropic models keep Anthropic's rules behind OpenRouter: it rebuilds thinking blocks from an
assistant message's `anthropic-claude-v1` entries, and Anthropic's 400 comes back inside
OpenRouter's error body. `refusal` rebuilds the history the same way and asks the Anthropic
emulator's validator, so the signatures checked are the ones `thinking_signature` issues.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from tests.emulators.anthropic import DEFAULT_THINKING, ErrorFixture, thinking_failure, thinking_signature
from tests.emulators.chat_scenarios import emulator_signature, split_text

JSON = dict[str, Any]

ANTHROPIC_FORMAT = "anthropic-claude-v1"
FORMATS = (ANTHROPIC_FORMAT, "openai-responses-v1", "google-gemini-v1", "unknown")
TYPES = ("reasoning.text", "reasoning.summary", "reasoning.encrypted")
DEFAULT_REASONING = DEFAULT_THINKING
_CONCATENATED = ("text", "summary")


def asks_for_reasoning(request: Mapping[str, Any]) -> bool:
    """The request turns reasoning on: `reasoning_effort`, or a `reasoning` object that enables it."""
    effort = request.get("reasoning_effort")
    if isinstance(effort, str) and effort != "none":
        return True
    config = request.get("reasoning")
    if not isinstance(config, dict) or config.get("enabled") is False:
        return False
    return (
        config.get("enabled") is True
        or config.get("effort") not in (None, "none")
        or bool(config.get("max_tokens"))
    )


def _entry(kind: str, field: str, value: str, fmt: str, index: int, **extra: Any) -> JSON:
    return {"type": kind, field: value, "id": None, **extra, "format": fmt, "index": index}


def details(model: str, thought: str) -> list[JSON]:
    """The `reasoning_details` of a turn that thought `thought`, shaped by the model's vendor."""
    vendor = model.split("/", 1)[0]
    if vendor == "anthropic":
        signature = thinking_signature(thought)
        return [_entry("reasoning.text", "text", thought, ANTHROPIC_FORMAT, 0, signature=signature)]
    if vendor == "openai":
        item = "rs_" + hashlib.sha256(thought.encode()).hexdigest()[:32]
        encrypted = emulator_signature("openai-reasoning", thought)
        return [
            _entry("reasoning.summary", "summary", thought, "openai-responses-v1", 0, id=item),
            _entry("reasoning.encrypted", "data", encrypted, "openai-responses-v1", 1, id=item),
        ]
    if vendor == "google":
        signature = emulator_signature("gemini-thought", thought)
        return [
            _entry("reasoning.text", "text", thought, "google-gemini-v1", 0),
            _entry("reasoning.encrypted", "data", signature, "google-gemini-v1", 1),
        ]
    return [_entry("reasoning.text", "text", thought, "unknown", 0)]


def pieces(entries: list[JSON], parts: int = 3) -> list[JSON]:
    """The entries as streamed: readable text in `parts` pieces, then the signature on its own."""
    out: list[JSON] = []
    for entry in entries:
        field = next((f for f in _CONCATENATED if f in entry), None)
        if field is None:
            out.append(dict(entry))
            continue
        tags = {"type": entry["type"], "format": entry["format"], "index": entry["index"]}
        blank = {key: None for key in entry} | tags
        texts = split_text(entry[field], parts)
        out.append(blank | {field: texts[0], "id": entry["id"]})
        out += [blank | {field: text} for text in texts[1:]]
        if entry.get("signature"):
            out.append(blank | {field: "", "signature": entry["signature"]})
    return out


def _thinking_block(entry: Mapping[str, Any]) -> JSON:
    if entry.get("type") == "reasoning.encrypted":
        return {"type": "redacted_thinking", "data": entry.get("data")}
    return {"type": "thinking", "thinking": entry.get("text") or "", "signature": entry.get("signature")}


def anthropic_messages(messages: list[Any]) -> list[JSON]:
    """The history as OpenRouter hands it to Anthropic: system apart, thinking blocks rebuilt
    first in their assistant turn, tool results in user turns."""
    out: list[JSON] = []
    for m in messages:
        if not isinstance(m, dict) or m.get("role") in ("system", "developer"):
            continue
        if m.get("role") == "assistant":
            blocks = [
                _thinking_block(d)
                for d in m.get("reasoning_details") or []
                if isinstance(d, dict) and d.get("format") == ANTHROPIC_FORMAT
            ]
            if m.get("content"):
                blocks.append({"type": "text", "text": str(m["content"])})
            for call in m.get("tool_calls") or []:
                fn = call.get("function") or {}
                blocks.append({"type": "tool_use", "id": call.get("id"), "name": fn.get("name"), "input": {}})
            out.append({"role": "assistant", "content": blocks})
        elif m.get("role") == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": m.get("tool_call_id"),
                "content": str(m.get("content")),
            }
            if out and out[-1]["role"] == "user" and out[-1]["content"][-1]["type"] == "tool_result":
                out[-1]["content"].append(result)
            else:
                out.append({"role": "user", "content": [result]})
        else:
            out.append({"role": "user", "content": [{"type": "text", "text": str(m.get("content"))}]})
    return out


def refusal(request: Mapping[str, Any]) -> JSON | None:
    """OpenRouter's 400 for an Anthropic thinking request whose history Anthropic refuses: one
    answering tool calls of an assistant message without its entries, or with altered ones."""
    if not str(request.get("model", "")).startswith("anthropic/") or not asks_for_reasoning(request):
        return None
    failure = thinking_failure({"messages": anthropic_messages(request.get("messages") or [])})
    if failure is None:
        return None
    raw = json.dumps(ErrorFixture(400, "invalid_request_error", failure).payload())
    metadata = {"raw": raw, "provider_name": "Anthropic"}
    return {"error": {"code": 400, "message": "Provider returned error", "metadata": metadata}}
