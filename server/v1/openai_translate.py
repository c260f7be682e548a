"""Pure translation between the OpenAI Chat Completions wire format and `providers.types`.

Request in: `to_chat_request` turns the validated wire model into a `ChatRequest`
(`developer` messages become system messages, as every provider treats them).
Response out: `completion_body` serialises a `ChatResponse`; `ChunkEncoder` turns the routed
stream's events into `data: {...}` SSE frames, byte for byte the shape the openai SDKs parse,
including the trailing usage chunk when `stream_options.include_usage` is set.

Reasoning goes out as `reasoning_content` and `reasoning_details` on the message (or delta) and
comes back the same way on assistant messages (server/v1/reasoning_wire.py), or as a tool call's
`extra_content.google.thought_signature` from Gemini-compatible clients; `reasoning_effort`
becomes the request's `ReasoningConfig` (`none` asks for none, `xhigh` is `high`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from providers.types import (
    NO_REASONING,
    AudioPart,
    ChatRequest,
    ChatResponse,
    ContentPart,
    Finish,
    FinishReason,
    ImagePart,
    JsonObjectFormat,
    JsonSchemaFormat,
    Message,
    NamedToolChoice,
    Reasoning,
    ReasoningArtifactDone,
    ReasoningConfig,
    ReasoningDelta,
    ReasoningEffort,
    RefusalDelta,
    ResponseFormat,
    Role,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStart,
    ToolChoice,
    ToolSpec,
    Usage,
    UsageUpdate,
)
from server.v1.openai_wire import (
    AudioContent,
    ChatCompletionRequest,
    ImageContent,
    MessageIn,
    NamedToolChoiceIn,
    ResponseFormatIn,
)
from server.v1.openai_wire import (
    ContentPart as WirePart,
)
from server.v1.reasoning_wire import artifacts, detail, google_signature

_ROLES: Mapping[str, Role] = {
    "system": Role.SYSTEM,
    "developer": Role.SYSTEM,
    "user": Role.USER,
    "assistant": Role.ASSISTANT,
    "tool": Role.TOOL,
}

FINISH_OUT: Mapping[FinishReason, str] = {
    FinishReason.STOP: "stop",
    FinishReason.TOOL_CALLS: "tool_calls",
    FinishReason.LENGTH: "length",
    FinishReason.CONTENT_FILTER: "content_filter",
    FinishReason.PAUSE: "stop",
    FinishReason.ERROR: "stop",
}


class WireRequestError(ValueError):
    """The request is well-formed JSON but asks for something we cannot represent (a 400)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def _part(part: WirePart) -> ContentPart:
    if isinstance(part, ImageContent):
        return ImagePart(url=part.image_url.url, detail=part.image_url.detail)
    if isinstance(part, AudioContent):
        return AudioPart(data_b64=part.input_audio.data, format=part.input_audio.format)
    return TextPart(part.text)


def _message(index: int, m: MessageIn) -> Message:
    # Runs once per message of the history a client resends each turn, so the common message
    # (text only, no tool calls, no reasoning) builds no object it does not keep.
    role = _ROLES[m.role]
    raw = m.content
    if raw is None:
        content: tuple[ContentPart, ...] = ()
    elif isinstance(raw, str):
        content = (TextPart(raw),) if raw or role is not Role.ASSISTANT else ()
    else:
        content = tuple(_part(p) for p in raw)
        if role is not Role.USER and any(not isinstance(p, TextPart) for p in content):
            raise WireRequestError(
                "only user messages may carry images or audio", f"messages[{index}].content"
            )
    wire_calls = m.tool_calls
    calls: tuple[ToolCall, ...] = ()
    if wire_calls:
        if role is not Role.ASSISTANT:
            raise WireRequestError(
                "only assistant messages carry tool_calls", f"messages[{index}].tool_calls"
            )
        calls = tuple(
            ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments) for c in wire_calls
        )
    if role is Role.TOOL and not m.tool_call_id:
        raise WireRequestError("a tool message needs tool_call_id", f"messages[{index}].tool_call_id")
    reasoning = NO_REASONING
    if role is Role.ASSISTANT and (m.reasoning_content or m.reasoning_details or wire_calls):
        carried = artifacts(m.reasoning_details or ())
        on_calls = (google_signature(c.id, c.extra_content) for c in wire_calls or ())
        extra = tuple(s for s in on_calls if s is not None and s not in carried)
        reasoning = Reasoning(text=m.reasoning_content or "", artifacts=carried + extra)
    return Message(role, content, calls, m.tool_call_id, m.name, reasoning)


_EFFORTS: Mapping[str, ReasoningEffort] = {
    "minimal": "minimal",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
}


def _reasoning(effort: str | None) -> ReasoningConfig | None:
    """`reasoning_effort` as a config; `none` (and no value) asks for no thinking."""
    mapped = _EFFORTS.get(effort or "")
    return ReasoningConfig(effort=mapped) if mapped else None


def _tool_choice(raw: str | NamedToolChoiceIn | None) -> ToolChoice | None:
    if raw is None:
        return None
    if isinstance(raw, NamedToolChoiceIn):
        return NamedToolChoice(raw.function.name)
    if raw == "auto":
        return "auto"
    if raw == "none":
        return "none"
    return "required"


def _response_format(raw: ResponseFormatIn | None) -> ResponseFormat | None:
    if raw is None or raw.type == "text":
        return None
    if raw.type == "json_object":
        return JsonObjectFormat()
    if raw.json_schema is None:
        raise WireRequestError("response_format json_schema needs a json_schema object", "response_format")
    js = raw.json_schema
    return JsonSchemaFormat(
        name=js.name,
        schema=js.schema_,
        strict=js.strict if js.strict is not None else False,
        description=js.description,
    )


def to_chat_request(wire: ChatCompletionRequest) -> ChatRequest:
    """The normalized request. `model` keeps the caller's string; the router resolves it."""
    tools = tuple(
        ToolSpec(
            name=t.function.name,
            description=t.function.description or "",
            parameters=t.function.parameters or {"type": "object", "properties": {}},
            strict=t.function.strict,
        )
        for t in wire.tools or ()
    )
    choice = _tool_choice(wire.tool_choice)
    if isinstance(choice, NamedToolChoice) and choice.name not in {t.name for t in tools}:
        raise WireRequestError(f"tool_choice names {choice.name!r}, which is not in tools", "tool_choice")
    stop = (wire.stop,) if isinstance(wire.stop, str) else tuple(wire.stop or ())
    if len(stop) > 4:
        raise WireRequestError("stop takes at most 4 sequences", "stop")
    return ChatRequest(
        model=wire.model,
        messages=tuple(_message(i, m) for i, m in enumerate(wire.messages)),
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=wire.parallel_tool_calls,
        response_format=_response_format(wire.response_format),
        max_output_tokens=wire.max_completion_tokens or wire.max_tokens,
        temperature=wire.temperature,
        stop=stop,
        metadata=dict(wire.metadata or {}),
        reasoning=_reasoning(wire.reasoning_effort),
    )


def usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def _call_body(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def completion_body(
    response: ChatResponse, *, completion_id: str, model: str, created: int | None = None
) -> bytes:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": response.text or None,
        "refusal": response.refusal,
    }
    if response.tool_calls:
        message["tool_calls"] = [_call_body(c) for c in response.tool_calls]
    if response.reasoning.text:
        message["reasoning_content"] = response.reasoning.text
    if response.reasoning.artifacts:
        message["reasoning_details"] = [detail(a) for a in response.reasoning.artifacts]
    body = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": FINISH_OUT[response.finish_reason],
                "logprobs": None,
            }
        ],
        "usage": usage_body(response.usage),
    }
    return orjson.dumps(body)


def sse(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


DONE = b"data: [DONE]\n\n"


class ChunkEncoder:
    """Routed stream events -> OpenAI `chat.completion.chunk` SSE frames (stateful, one per stream).

    The chunk prefix (id, object, created, model) is serialised once; each event only adds
    its delta. Tool calls announced with `ToolCallStart` stream their arguments as they come;
    a `ToolCallDone` for a call never announced (an adapter that only knows complete calls)
    is sent whole in one chunk.
    """

    def __init__(
        self, *, completion_id: str, model: str, include_usage: bool, created: int | None = None
    ) -> None:
        head = orjson.dumps(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created if created is not None else int(time.time()),
                "model": model,
            }
        )
        self._head = b"data: " + head[:-1] + b',"choices":['
        self._usage_head = b"data: " + head[:-1] + b',"choices":[],"usage":'
        self._include_usage = include_usage
        self._announced: set[int] = set()
        self.usage: Usage | None = None
        self.finish: FinishReason | None = None

    def _choice(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return self._head + orjson.dumps(choice) + b"]}\n\n"

    def start(self) -> bytes:
        """The first frame: the assistant role, as OpenAI sends it."""
        return self._choice({"role": "assistant", "content": "", "refusal": None})

    def encode(self, event: StreamEvent) -> bytes:
        """The frames for one event (often empty: usage is held for the end)."""
        if isinstance(event, TextDelta):
            return self._choice({"content": event.text})
        if isinstance(event, ToolCallDelta):
            return self._choice(
                {"tool_calls": [{"index": event.index, "function": {"arguments": event.arguments}}]}
            )
        if isinstance(event, ToolCallStart):
            self._announced.add(event.index)
            call = {
                "index": event.index,
                "id": event.id,
                "type": "function",
                "function": {"name": event.name, "arguments": ""},
            }
            return self._choice({"tool_calls": [call]})
        if isinstance(event, ToolCallDone):
            if event.index in self._announced:
                return b""
            self._announced.add(event.index)
            return self._choice({"tool_calls": [{"index": event.index, **_call_body(event.call)}]})
        if isinstance(event, RefusalDelta):
            return self._choice({"refusal": event.text})
        if isinstance(event, ReasoningDelta):
            return self._choice({"reasoning_content": event.text})
        if isinstance(event, ReasoningArtifactDone):
            return self._choice({"reasoning_details": [detail(event.artifact)]})
        if isinstance(event, UsageUpdate):
            self.usage = event.usage
            return b""
        if isinstance(event, Finish):
            self.finish = event.reason
            return self._choice({}, FINISH_OUT[event.reason])
        return b""

    def end(self) -> bytes:
        """The usage chunk (when asked for) and `[DONE]`."""
        if self._include_usage:
            return self._usage_head + orjson.dumps(usage_body(self.usage or Usage())) + b"}\n\n" + DONE
        return DONE
