"""Anthropic named SSE events → normalized stream events. Pure; no I/O.

Feed each decoded event with `feed(name, data)`; call `end()` when the byte stream closes.
Contracts:
- Tool calls are numbered by their order among tool calls (0, 1, ...), not by content-block
  index, matching the OpenAI-style index of our `ToolCallStart`/`ToolCallDelta`.
- Tool input arrives as `input_json_delta` fragments per block; they are concatenated and parsed
  at `content_block_stop`. An empty fragment emits nothing; a tool with no fragments gets `{}`.
- Usage: `message_start` gives the prompt counts, each `message_delta.usage` is cumulative and
  replaces the fields it carries. Every `UsageUpdate` is a full snapshot; the last one wins.
- `Finish` is emitted only on `message_stop`; a stream that ends without it raises `NETWORK`.
- An `error` event raises the `ProviderError` its `error.type` maps to (overloaded ≙ 529).
- With a structured-output tool, that tool's JSON fragments stream as `TextDelta`s and the
  accumulated text is kept in `structured_text` for the adapter to validate.
- A `thinking` block streams its text as `ReasoningDelta`s (`thinking_delta`) and collects its
  `signature_delta`s; at `content_block_stop` the whole block is one `ReasoningArtifactDone`.
  A `redacted_thinking` block arrives whole in its start event and is emitted at its stop.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from providers.contract import ErrorClass, ProviderId
from providers.errors import ProviderError
from providers.types import (
    Finish,
    ReasoningArtifactDone,
    ReasoningDelta,
    RedactedThinking,
    StreamEvent,
    TextDelta,
    ThinkingBlock,
    ToolCall,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStart,
    UsageUpdate,
)

from .anthropic_errors_wire import error_from_payload
from .anthropic_response_wire import compact_json, finish_reason, usage_from_wire
from .anthropic_wire import ORIGIN

_PROVIDER = ProviderId.ANTHROPIC.value


@dataclass(slots=True)
class _ToolBlock:
    ordinal: int
    id: str
    name: str
    structured: bool
    fragments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _ThinkingBlock:
    redacted_data: str | None = None
    text: list[str] = field(default_factory=list)
    signature: list[str] = field(default_factory=list)


def _protocol_error(message: str) -> ProviderError:
    return ProviderError(ErrorClass.SERVER_ERROR, message, provider=_PROVIDER)


class AnthropicStreamTranslator:
    def __init__(
        self, *, structured_tool: str | None = None, secrets: Iterable[str] = (), origin: str = ORIGIN
    ) -> None:
        self._structured_tool = structured_tool
        self._secrets = tuple(secrets)
        self._origin = origin
        self._thinking: dict[int, _ThinkingBlock] = {}
        self._tools: dict[int, _ToolBlock] = {}
        self._tool_count = 0
        self._usage: dict[str, Any] = {}
        self._stop_reason: str | None = None
        self._stopped = False
        self.message_id: str | None = None
        self.model: str | None = None
        self.structured_text: str | None = None

    @property
    def finished(self) -> bool:
        return self._stopped

    def feed(self, name: str, data: Mapping[str, Any]) -> list[StreamEvent]:
        match data.get("type", name):
            case "message_start":
                return self._on_message_start(data)
            case "content_block_start":
                return self._on_content_block_start(data)
            case "content_block_delta":
                return self._on_content_block_delta(data)
            case "content_block_stop":
                return self._on_content_block_stop(data)
            case "message_delta":
                return self._on_message_delta(data)
            case "message_stop":
                return self._on_message_stop()
            case "error":
                raise self._error(data)
            case _:
                # `ping` and event types newer than this adapter carry nothing we use.
                return []

    def end(self) -> list[StreamEvent]:
        if not self._stopped:
            raise ProviderError(ErrorClass.NETWORK, "stream ended before message_stop", provider=_PROVIDER)
        return []

    def _error(self, data: Mapping[str, Any]) -> ProviderError:
        error = data.get("error")
        return error_from_payload(
            error if isinstance(error, Mapping) else {}, status=None, secrets=self._secrets, model=self.model
        )

    def _on_message_start(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        message = data.get("message") or {}
        self.message_id = message.get("id")
        self.model = message.get("model")
        self._usage = dict(message.get("usage") or {})
        return [UsageUpdate(usage_from_wire(self._usage))]

    def _on_content_block_start(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        block = data.get("content_block") or {}
        index = int(data.get("index", 0))
        if block.get("type") == "text":
            text = block.get("text") or ""
            return [TextDelta(text)] if text else []
        if block.get("type") == "thinking":
            thinking = _ThinkingBlock()
            self._thinking[index] = thinking
            return self._thinking_delta(thinking, block.get("thinking"), block.get("signature"))
        if block.get("type") == "redacted_thinking":
            self._thinking[index] = _ThinkingBlock(redacted_data=str(block.get("data") or ""))
            return []
        if block.get("type") != "tool_use":
            return []
        structured = self._structured_tool is not None and block.get("name") == self._structured_tool
        tool = _ToolBlock(
            ordinal=self._tool_count,
            id=str(block.get("id", "")),
            name=str(block.get("name", "")),
            structured=structured,
        )
        self._tools[index] = tool
        if structured:
            return []
        self._tool_count += 1
        return [ToolCallStart(index=tool.ordinal, id=tool.id, name=tool.name)]

    def _on_content_block_delta(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        delta = data.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text") or ""
            return [TextDelta(text)] if text else []
        if kind in ("thinking_delta", "signature_delta"):
            thinking = self._thinking.get(int(data.get("index", 0)))
            if thinking is None:
                raise _protocol_error(f"{kind} for a block that is not a thinking block")
            return self._thinking_delta(thinking, delta.get("thinking"), delta.get("signature"))
        if kind != "input_json_delta":
            # Citation deltas have no normalized counterpart.
            return []
        tool = self._tools.get(int(data.get("index", 0)))
        fragment = delta.get("partial_json") or ""
        if tool is None:
            raise _protocol_error("input_json_delta for a block that is not a tool_use")
        if not fragment:
            return []
        tool.fragments.append(fragment)
        if tool.structured:
            return [TextDelta(fragment)]
        return [ToolCallDelta(index=tool.ordinal, arguments=fragment)]

    @staticmethod
    def _thinking_delta(block: _ThinkingBlock, text: Any, signature: Any) -> list[StreamEvent]:
        if isinstance(signature, str) and signature:
            block.signature.append(signature)
        if isinstance(text, str) and text:
            block.text.append(text)
            return [ReasoningDelta(text)]
        return []

    def _thinking_done(self, block: _ThinkingBlock) -> list[StreamEvent]:
        if block.redacted_data is not None:
            return [ReasoningArtifactDone(RedactedThinking(origin=self._origin, data=block.redacted_data))]
        artifact = ThinkingBlock(
            origin=self._origin, thinking="".join(block.text), signature="".join(block.signature)
        )
        return [ReasoningArtifactDone(artifact)]

    def _on_content_block_stop(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        thinking = self._thinking.pop(int(data.get("index", 0)), None)
        if thinking is not None:
            return self._thinking_done(thinking)
        tool = self._tools.pop(int(data.get("index", 0)), None)
        if tool is None:
            return []
        raw = "".join(tool.fragments)
        try:
            value = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise _protocol_error("tool input in the stream is not valid JSON") from None
        if tool.structured:
            self.structured_text = raw if raw.strip() else compact_json(value)
            if not raw.strip():
                return [TextDelta(self.structured_text)]
            return []
        arguments = raw if raw.strip() else compact_json(value)
        return [
            ToolCallDone(index=tool.ordinal, call=ToolCall(id=tool.id, name=tool.name, arguments=arguments))
        ]

    def _on_message_delta(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        delta = data.get("delta") or {}
        if delta.get("stop_reason"):
            self._stop_reason = delta["stop_reason"]
        usage = data.get("usage")
        if isinstance(usage, Mapping):
            self._usage.update({k: v for k, v in usage.items() if v is not None})
            return [UsageUpdate(usage_from_wire(self._usage))]
        return []

    def _on_message_stop(self) -> list[StreamEvent]:
        self._stopped = True
        structured = self._structured_tool is not None
        return [Finish(finish_reason(self._stop_reason, structured=structured))]
