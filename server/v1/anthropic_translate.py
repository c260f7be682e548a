"""Pure translation between the Anthropic Messages wire format and `providers.types`.

In: system text becomes a system message; a user turn's `tool_result` blocks become tool
messages (placed before the turn's other content, right after the assistant's tool calls);
`tool_use` blocks become tool calls; `tool_choice` `any` is `required`.

Out: `message_body` serialises a response; `MessageEventEncoder` turns routed stream events
into Anthropic's named SSE events (message_start, content_block_*, message_delta,
message_stop). Text streams as it comes; a tool_use block is sent whole when its call is
complete, since Anthropic blocks are strictly sequential while other providers may
interleave the arguments of parallel calls.

Reasoning: Anthropic's own thinking blocks (origin `anthropic-messages:anthropic`) go out and
come back natively. Anything else (readable reasoning and artifacts of other providers) travels
in a `thinking` block whose signature packs those artifacts (server/v1/reasoning_wire.py), so a
client that replays its history verbatim replays them too. `thinking: {type: "enabled"}`
becomes the request's `ReasoningConfig`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from providers.adapters.anthropic_wire import ORIGIN as NATIVE
from providers.types import (
    NO_REASONING,
    ChatRequest,
    ChatResponse,
    ContentPart,
    Finish,
    FinishReason,
    ImagePart,
    Message,
    NamedToolChoice,
    Reasoning,
    ReasoningArtifact,
    ReasoningArtifactDone,
    ReasoningConfig,
    ReasoningDelta,
    RedactedThinking,
    RefusalDelta,
    Role,
    StreamEvent,
    TextDelta,
    TextPart,
    ThinkingBlock,
    ToolCall,
    ToolCallDone,
    ToolChoice,
    ToolSpec,
    Usage,
    UsageUpdate,
)
from server.v1.anthropic_wire import (
    ImageBlock,
    MessageParam,
    MessagesRequest,
    RedactedThinkingIn,
    TextBlock,
    ThinkingBlockIn,
    ThinkingParam,
    ToolChoiceParam,
    ToolResultBlock,
    ToolUseBlock,
)
from server.v1.openai_translate import WireRequestError
from server.v1.reasoning_wire import pack, unpack

STOP_REASONS: Mapping[FinishReason, str] = {
    FinishReason.STOP: "end_turn",
    FinishReason.TOOL_CALLS: "tool_use",
    FinishReason.LENGTH: "max_tokens",
    FinishReason.CONTENT_FILTER: "refusal",
    FinishReason.PAUSE: "pause_turn",
    FinishReason.ERROR: "end_turn",
}


def _image(block: ImageBlock) -> ImagePart:
    source = block.source
    if source.type == "base64":
        return ImagePart(url=f"data:{source.media_type};base64,{source.data}")
    return ImagePart(url=source.url)


def _tool_result(block: ToolResultBlock, where: str) -> Message:
    if block.content is None:
        text = ""
    elif isinstance(block.content, str):
        text = block.content
    else:
        if any(isinstance(b, ImageBlock) for b in block.content):
            raise WireRequestError("images inside tool_result blocks are not supported", where)
        text = "".join(b.text for b in block.content if isinstance(b, TextBlock))
    if block.is_error:
        text = f"Error: {text}"
    return Message(role=Role.TOOL, content=(TextPart(text),), tool_call_id=block.tool_use_id)


def _turn(index: int, m: MessageParam) -> list[Message]:
    if isinstance(m.content, str):  # most turns of a history: plain text
        return [Message(Role.USER if m.role == "user" else Role.ASSISTANT, (TextPart(m.content),))]
    where = f"messages[{index}].content"
    parts: list[ContentPart] = []
    calls: list[ToolCall] = []
    results: list[Message] = []
    thoughts: list[str] = []
    artifacts: list[ReasoningArtifact] = []
    for block in m.content:
        if isinstance(block, ThinkingBlockIn | RedactedThinkingIn):
            if m.role != "assistant":
                raise WireRequestError("thinking blocks belong to assistant turns", where)
            if isinstance(block, RedactedThinkingIn):
                artifacts.append(RedactedThinking(origin=NATIVE, data=block.data))
                continue
            thoughts.append(block.thinking)
            packed = unpack(block.signature)
            if packed is None:
                artifacts.append(
                    ThinkingBlock(origin=NATIVE, thinking=block.thinking, signature=block.signature)
                )
            else:
                artifacts.extend(packed)
        elif isinstance(block, TextBlock):
            parts.append(TextPart(block.text))
        elif isinstance(block, ImageBlock):
            if m.role != "user":
                raise WireRequestError("only user turns may carry images", where)
            parts.append(_image(block))
        elif isinstance(block, ToolUseBlock):
            if m.role != "assistant":
                raise WireRequestError("tool_use blocks belong to assistant turns", where)
            calls.append(ToolCall(id=block.id, name=block.name, arguments=orjson.dumps(block.input).decode()))
        else:
            if m.role != "user":
                raise WireRequestError("tool_result blocks belong to user turns", where)
            results.append(_tool_result(block, where))
    if m.role == "assistant":
        reasoning = (
            Reasoning(text="".join(thoughts), artifacts=tuple(artifacts))
            if thoughts or artifacts
            else NO_REASONING
        )
        return [
            Message(role=Role.ASSISTANT, content=tuple(parts), tool_calls=tuple(calls), reasoning=reasoning)
        ]
    return results + ([Message(role=Role.USER, content=tuple(parts))] if parts else [])


def _tool_choice(raw: ToolChoiceParam | None) -> ToolChoice | None:
    if raw is None or raw.type == "auto":
        return "auto" if raw is not None else None
    if raw.type == "any":
        return "required"
    if raw.type == "none":
        return "none"
    if not raw.name:
        raise WireRequestError("tool_choice of type tool needs a name", "tool_choice.name")
    return NamedToolChoice(raw.name)


def _reasoning_config(raw: ThinkingParam | None) -> ReasoningConfig | None:
    if raw is None or raw.type == "disabled":
        return None
    return ReasoningConfig(budget_tokens=raw.budget_tokens)


def to_chat_request(wire: MessagesRequest) -> ChatRequest:
    messages: list[Message] = []
    if wire.system:
        text = wire.system if isinstance(wire.system, str) else "".join(b.text for b in wire.system)
        messages.append(Message(role=Role.SYSTEM, content=(TextPart(text),)))
    for index, m in enumerate(wire.messages):
        messages.extend(_turn(index, m))
    tools = tuple(
        ToolSpec(name=t.name, description=t.description or "", parameters=t.input_schema)
        for t in wire.tools or ()
    )
    choice = _tool_choice(wire.tool_choice)
    if isinstance(choice, NamedToolChoice) and choice.name not in {t.name for t in tools}:
        raise WireRequestError(f"tool_choice names {choice.name!r}, which is not in tools", "tool_choice")
    parallel = None
    if wire.tool_choice is not None and wire.tool_choice.disable_parallel_tool_use is not None:
        parallel = not wire.tool_choice.disable_parallel_tool_use
    return ChatRequest(
        model=wire.model,
        messages=tuple(messages),
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=parallel,
        max_output_tokens=wire.max_tokens,
        temperature=wire.temperature,
        stop=tuple(wire.stop_sequences or ()),
        reasoning=_reasoning_config(wire.thinking),
    )


def usage_body(usage: Usage) -> dict[str, int]:
    """Anthropic counts cache reads and writes apart from `input_tokens`; ours includes them."""
    uncached = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens
    return {
        "input_tokens": max(0, uncached),
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cached_input_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
    }


def _arguments(call: ToolCall) -> Any:
    try:
        return call.parsed_arguments()
    except ValueError:
        return {}


def _tool_block(call: ToolCall) -> dict[str, Any]:
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": _arguments(call)}


def _native(artifact: ReasoningArtifact) -> dict[str, Any] | None:
    """An Anthropic artifact as its own block; None for a foreign one."""
    if artifact.origin != NATIVE:
        return None
    if isinstance(artifact, ThinkingBlock):
        return {"type": "thinking", "thinking": artifact.thinking, "signature": artifact.signature}
    if isinstance(artifact, RedactedThinking):
        return {"type": "redacted_thinking", "data": artifact.data}
    return None


def reasoning_blocks(reasoning: Reasoning) -> list[dict[str, Any]]:
    """Native thinking blocks as they are; anything else in one packed thinking block."""
    native = [b for b in map(_native, reasoning.artifacts) if b is not None]
    foreign = [a for a in reasoning.artifacts if _native(a) is None]
    if foreign or (reasoning.text and not native):
        native.append(
            {"type": "thinking", "thinking": "" if native else reasoning.text, "signature": pack(foreign)}
        )
    return native


def message_body(response: ChatResponse, *, message_id: str, model: str) -> bytes:
    content: list[dict[str, Any]] = reasoning_blocks(response.reasoning)
    text = response.text or response.refusal or ""
    if text:
        content.append({"type": "text", "text": text})
    content.extend(_tool_block(c) for c in response.tool_calls)
    body = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS[response.finish_reason],
        "stop_sequence": None,
        "usage": usage_body(response.usage),
    }
    return orjson.dumps(body)


def event(name: str, data: Mapping[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class MessageEventEncoder:
    """Routed stream events -> Anthropic SSE events (stateful, one per stream)."""

    def __init__(self, *, message_id: str, model: str) -> None:
        self._message_id = message_id
        self._model = model
        self._next_block = 0
        self._text_open: int | None = None
        self._thinking_open: int | None = None
        self.usage: Usage | None = None
        self.finish: FinishReason | None = None

    def start(self) -> bytes:
        message: dict[str, Any] = {
            "id": self._message_id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return event("message_start", {"type": "message_start", "message": message})

    def _close_text(self) -> bytes:
        out = self._close_thinking(pack(()))
        if self._text_open is None:
            return out
        index, self._text_open = self._text_open, None
        return out + event("content_block_stop", {"type": "content_block_stop", "index": index})

    def _open_thinking(self) -> bytes:
        if self._thinking_open is not None:
            return b""
        out = self._close_text()
        self._thinking_open = self._next_block
        self._next_block += 1
        block = {"type": "thinking", "thinking": "", "signature": ""}
        start = {"type": "content_block_start", "index": self._thinking_open, "content_block": block}
        return out + event("content_block_start", start)

    def _thinking_delta(self, delta: dict[str, Any]) -> bytes:
        assert self._thinking_open is not None
        data = {"type": "content_block_delta", "index": self._thinking_open, "delta": delta}
        return event("content_block_delta", data)

    def _close_thinking(self, signature: str) -> bytes:
        """Sign and close the open thinking block (a readable-only one gets an empty packed signature)."""
        if self._thinking_open is None:
            return b""
        out = self._thinking_delta({"type": "signature_delta", "signature": signature})
        index, self._thinking_open = self._thinking_open, None
        return out + event("content_block_stop", {"type": "content_block_stop", "index": index})

    def _reasoning(self, item: ReasoningDelta | ReasoningArtifactDone) -> bytes:
        if isinstance(item, ReasoningDelta):
            if not item.text:
                return b""
            return self._open_thinking() + self._thinking_delta(
                {"type": "thinking_delta", "thinking": item.text}
            )
        artifact = item.artifact
        if isinstance(artifact, RedactedThinking) and artifact.origin == NATIVE:
            out = self._close_text()
            index = self._next_block
            self._next_block += 1
            block = {"type": "redacted_thinking", "data": artifact.data}
            start = {"type": "content_block_start", "index": index, "content_block": block}
            stop = {"type": "content_block_stop", "index": index}
            return out + event("content_block_start", start) + event("content_block_stop", stop)
        out = self._open_thinking()
        if isinstance(artifact, ThinkingBlock) and artifact.origin == NATIVE:
            return out + self._close_thinking(artifact.signature)
        return out + self._close_thinking(pack((artifact,)))

    def _text(self, text: str) -> bytes:
        out = self._close_thinking(pack(()))
        if self._text_open is None:
            self._text_open = self._next_block
            self._next_block += 1
            block = {"type": "text", "text": ""}
            out = event(
                "content_block_start",
                {"type": "content_block_start", "index": self._text_open, "content_block": block},
            )
        delta = {
            "type": "content_block_delta",
            "index": self._text_open,
            "delta": {"type": "text_delta", "text": text},
        }
        return out + event("content_block_delta", delta)

    def _tool(self, call: ToolCall) -> bytes:
        out = self._close_text()
        index = self._next_block
        self._next_block += 1
        block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
        out += event(
            "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}
        )
        arguments = orjson.dumps(_arguments(call)).decode()
        delta = {"type": "input_json_delta", "partial_json": arguments}
        out += event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        return out + event("content_block_stop", {"type": "content_block_stop", "index": index})

    def encode(self, item: StreamEvent) -> bytes:
        if isinstance(item, TextDelta | RefusalDelta):
            return self._text(item.text) if item.text else b""
        if isinstance(item, ReasoningDelta | ReasoningArtifactDone):
            return self._reasoning(item)
        if isinstance(item, ToolCallDone):
            return self._tool(item.call)
        if isinstance(item, UsageUpdate):
            self.usage = item.usage
        elif isinstance(item, Finish):
            self.finish = item.reason
        return b""

    def end(self) -> bytes:
        out = self._close_text()
        reason = STOP_REASONS[self.finish or FinishReason.STOP]
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": None},
            "usage": usage_body(self.usage or Usage()),
        }
        return out + event("message_delta", delta) + event("message_stop", {"type": "message_stop"})

    def error(self, body: bytes) -> bytes:
        return b"event: error\ndata: " + body + b"\n\n"
