"""Pure translation between our chat types and the OpenAI Chat Completions wire.

`build_request` turns a `ChatRequest` into the JSON body, `parse_response` reads a
`chat.completion`, and `StreamTranslator` turns `chat.completion.chunk` dicts into our
stream events. No I/O here: the adapter module wraps these in HTTP.

Reasoning: `reasoning_content` (Kimi, DeepSeek, xAI, vLLM) is both readable reasoning and an
artifact (`ReasoningContent`) that is written back on the assistant turn, but only to the same
origin (`<protocol>:<provider>`): Kimi requires it on assistant turns with tool calls, while
strict servers reject a field they never sent. OpenRouter's `reasoning` is readable text only;
its `reasoning_details` entries (signed thinking, summaries, encrypted reasoning) are artifacts
(`ReasoningDetail`, one per entry, streamed pieces merged by `index`) written back as
`reasoning_details` on the assistant turn, in order, again only to the same origin. Their text is
not read as readable reasoning: it repeats `reasoning`. A `ReasoningConfig` with an effort is sent
as `reasoning_effort`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from providers.adapters.openai_errors import classify_error
from providers.adapters.openai_quirks import OpenAIQuirks
from providers.contract import ErrorClass, ProviderId, WireProtocol
from providers.errors import ProviderError
from providers.types import (
    AudioPart,
    ChatRequest,
    ChatResponse,
    Finish,
    FinishReason,
    ImagePart,
    JsonObjectFormat,
    JsonSchemaFormat,
    Message,
    NamedToolChoice,
    Reasoning,
    ReasoningArtifactDone,
    ReasoningContent,
    ReasoningDelta,
    ReasoningDetail,
    RefusalDelta,
    Role,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStart,
    Usage,
    UsageUpdate,
    reasoning_origin,
)

JSON = dict[str, Any]

ORIGIN = reasoning_origin(WireProtocol.OPENAI_CHAT, ProviderId.OPENAI)
"""The default origin of these pure functions; adapters pass their endpoint's."""

FINISH_REASONS: Mapping[str, FinishReason] = {
    "stop": FinishReason.STOP,
    "end_turn": FinishReason.STOP,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
    "length": FinishReason.LENGTH,
    "model_length": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
    "error": FinishReason.ERROR,
}


def _part(part: TextPart | ImagePart | AudioPart) -> JSON:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ImagePart):
        image: JSON = {"url": part.url}
        if part.detail:
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}
    return {"type": "input_audio", "input_audio": {"data": part.data_b64, "format": part.format}}


def _content(message: Message) -> str | list[JSON]:
    parts = message.content
    if len(parts) == 1 and parts[0].__class__ is TextPart:  # most messages: one text part
        return parts[0].text
    if all(isinstance(p, TextPart) for p in parts):
        return message.text
    return [_part(p) for p in parts]


def _replayed_reasoning(message: Message, origin: str) -> str:
    return "".join(a.text for a in message.reasoning.bound_to(origin) if isinstance(a, ReasoningContent))


def _replayed_details(message: Message, origin: str) -> list[JSON]:
    return [dict(a.detail) for a in message.reasoning.bound_to(origin) if isinstance(a, ReasoningDetail)]


def _message(message: Message, quirks: OpenAIQuirks, origin: str) -> JSON:
    if message.role is Role.SYSTEM:
        return {"role": quirks.system_role, "content": message.text}
    if message.role is Role.TOOL:
        return {
            "role": "tool",
            "tool_call_id": quirks.tool_call_id(message.tool_call_id or ""),
            "content": message.text,
        }
    if message.role is Role.ASSISTANT:
        out: JSON = {"role": "assistant", "content": message.text or None}
        if message.reasoning.artifacts:
            reasoning = _replayed_reasoning(message, origin)
            if reasoning:
                out["reasoning_content"] = reasoning
            details = _replayed_details(message, origin)
            if details:
                out["reasoning_details"] = details
        if message.tool_calls:
            out["tool_calls"] = [
                {
                    "id": quirks.tool_call_id(call.id),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments or "{}"},
                }
                for call in message.tool_calls
            ]
    else:
        out = {"role": message.role.value, "content": _content(message)}
    if message.name:
        out["name"] = message.name
    return out


def build_request(
    request: ChatRequest, quirks: OpenAIQuirks, *, stream: bool = False, origin: str = ORIGIN
) -> JSON:
    """The JSON body for `POST /chat/completions`; `origin` picks the reasoning to replay."""
    body: JSON = {"model": request.model, "messages": [_message(m, quirks, origin) for m in request.messages]}
    if request.tools:
        tools = []
        for tool in request.tools:
            fn: JSON = {
                "name": tool.name,
                "parameters": dict(tool.parameters) or {"type": "object", "properties": {}},
            }
            if tool.description:
                fn["description"] = tool.description
            if tool.strict is not None:
                fn["strict"] = tool.strict
            tools.append({"type": "function", "function": fn})
        body["tools"] = tools
        # OpenAI rejects `parallel_tool_calls` when no tools are sent.
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.tool_choice is not None:
        choice = request.tool_choice
        body["tool_choice"] = (
            {"type": "function", "function": {"name": choice.name}}
            if isinstance(choice, NamedToolChoice)
            else choice
        )
    fmt = request.response_format
    if isinstance(fmt, JsonSchemaFormat):
        schema: JSON = {"name": fmt.name, "schema": dict(fmt.schema), "strict": fmt.strict}
        if fmt.description:
            schema["description"] = fmt.description
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif isinstance(fmt, JsonObjectFormat):
        body["response_format"] = {"type": "json_object"}
    if request.max_output_tokens is not None:
        body[quirks.max_tokens_field] = request.max_output_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.stop:
        body["stop"] = list(request.stop)
    if request.reasoning is not None and request.reasoning.effort is not None:
        body["reasoning_effort"] = request.reasoning.effort
    if stream:
        body["stream"] = True
        # Without it OpenAI streams carry no usage at all; others accept it harmlessly.
        body["stream_options"] = {"include_usage": True}
    return body


def tool_id_map(request: ChatRequest, quirks: OpenAIQuirks) -> dict[str, str]:
    """Wire id -> our id, for ids `build_request` rewrote; used to map them back in replies."""
    ids = {c.id for m in request.messages for c in m.tool_calls}
    ids.update(m.tool_call_id for m in request.messages if m.tool_call_id)
    mapped = {quirks.tool_call_id(i): i for i in ids}
    return {wire: ours for wire, ours in mapped.items() if wire != ours}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def parse_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt = raw.get("prompt_tokens_details") or {}
    completion = raw.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=_int(raw.get("prompt_tokens")),
        output_tokens=_int(raw.get("completion_tokens")),
        cached_input_tokens=_int(prompt.get("cached_tokens")) if isinstance(prompt, dict) else 0,
        cache_write_tokens=_int(prompt.get("cache_write_tokens")) if isinstance(prompt, dict) else 0,
        reasoning_tokens=_int(completion.get("reasoning_tokens")) if isinstance(completion, dict) else 0,
        provider_cost=_cost(raw.get("cost")),
    )


def _cost(value: Any) -> float | None:
    return (
        float(value)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
        else None
    )


def finish_reason(raw: Any, *, refused: bool = False) -> FinishReason:
    if refused:
        return FinishReason.CONTENT_FILTER
    return FINISH_REASONS.get(raw, FinishReason.STOP) if isinstance(raw, str) else FinishReason.STOP


def content_text(content: Any) -> str:
    """`content` as text: a string, or (Mistral's reasoning models) a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"]
            for p in content
            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        )
    return ""


def _malformed(provider: str, what: str) -> ProviderError:
    return ProviderError(ErrorClass.SERVER_ERROR, f"malformed upstream response: {what}", provider=provider)


def _entries(raw: Any) -> list[Mapping[str, Any]]:
    return [e for e in raw if isinstance(e, dict)] if isinstance(raw, list) else []


def reasoning_of(message: Mapping[str, Any], origin: str) -> Reasoning:
    """`reasoning_content` (readable and replayable) or OpenRouter's `reasoning` (readable only),
    then each `reasoning_details` entry as it came."""
    entries = _entries(message.get("reasoning_details"))
    details = tuple(ReasoningDetail(origin=origin, detail=dict(e)) for e in entries)
    content = message.get("reasoning_content")
    if isinstance(content, str) and content:
        return Reasoning(text=content, artifacts=(ReasoningContent(origin=origin, text=content), *details))
    readable = message.get("reasoning")
    return Reasoning(text=readable if isinstance(readable, str) else "", artifacts=details)


_CONCATENATED = ("text", "summary")


def _merge_detail(entry: dict[str, Any], piece: Mapping[str, Any]) -> None:
    """Fold a streamed `reasoning_details` piece into its entry: `text` and `summary` concatenate,
    any other field takes the latest non-null value (null while none came)."""
    for key, value in piece.items():
        if key in _CONCATENATED and isinstance(value, str) and isinstance(entry.get(key), str):
            entry[key] += value
        elif value is not None or key not in entry:
            entry[key] = value


def parse_response(
    data: Mapping[str, Any],
    *,
    id_map: Mapping[str, str] | None = None,
    provider: str = "",
    origin: str = ORIGIN,
) -> ChatResponse:
    """Read a non-streaming `chat.completion`; raises `ProviderError` for an error or a malformed body."""
    if "error" in data and data["error"]:
        raise classify_error(None, dict(data), {}, provider)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _malformed(provider, "no choices")
    choice = choices[0]
    message = choice.get("message") or {}
    if not isinstance(message, dict):
        raise _malformed(provider, "message is not an object")
    ids = id_map or {}
    calls: list[ToolCall] = []
    for raw in message.get("tool_calls") or []:
        if not isinstance(raw, dict):
            raise _malformed(provider, "tool call is not an object")
        fn = raw.get("function") or {}
        call_id = raw.get("id") or f"call_{len(calls)}"
        calls.append(
            ToolCall(
                id=ids.get(call_id, call_id), name=fn.get("name") or "", arguments=fn.get("arguments") or ""
            )
        )
    refusal = message.get("refusal") or None
    usage = parse_usage(data.get("usage")) or parse_usage(choice.get("usage")) or Usage()
    return ChatResponse(
        text=content_text(message.get("content")),
        tool_calls=tuple(calls),
        finish_reason=finish_reason(choice.get("finish_reason"), refused=refusal is not None),
        usage=usage,
        model=str(data.get("model") or ""),
        refusal=refusal,
        response_id=data.get("id"),
        reasoning=reasoning_of(message, origin),
    )


def events_from_response(response: ChatResponse) -> list[StreamEvent]:
    """The events a stream would have carried, for a server that answered a stream in one body."""
    events: list[StreamEvent] = []
    if response.reasoning.text:
        events.append(ReasoningDelta(response.reasoning.text))
    events.extend(ReasoningArtifactDone(a) for a in response.reasoning.artifacts)
    if response.text:
        events.append(TextDelta(response.text))
    if response.refusal:
        events.append(RefusalDelta(response.refusal))
    for index, call in enumerate(response.tool_calls):
        events.append(ToolCallStart(index=index, id=call.id, name=call.name))
        if call.arguments:
            events.append(ToolCallDelta(index=index, arguments=call.arguments))
        events.append(ToolCallDone(index=index, call=call))
    events.append(UsageUpdate(response.usage))
    events.append(Finish(response.finish_reason))
    return events


_TEXT_ONLY = frozenset({"role", "content"})
"""The keys of a delta that carries text (or only the role) and nothing else."""


@dataclass(slots=True)
class _PendingCall:
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)


class StreamTranslator:
    """`chat.completion.chunk` dicts in, normalized events out.

    Tool-call fragments are accumulated by `index` (parallel calls may interleave) and each
    call is completed with `ToolCallDone` when the choice finishes. Usage is remembered
    from wherever it appears (top level or Kimi's `choices[0].usage`; cumulative when sent on
    every chunk) and emitted once, before `Finish`, when `[DONE]` arrives. A chunk carrying
    `error` raises `ProviderError`.
    """

    def __init__(
        self, *, provider: str = "", id_map: Mapping[str, str] | None = None, origin: str = ORIGIN
    ) -> None:
        self.provider = provider
        self._origin = origin
        self._reasoning: list[str] = []
        self._details: dict[int, dict[str, Any]] = {}
        self._ids = id_map or {}
        self._calls: dict[int, _PendingCall] = {}
        self._usage: Usage | None = None
        self._finish: str | None = None
        self._refused = False
        self._flushed = False
        self.text: list[str] = []
        self.done = False

    def feed(self, chunk: Mapping[str, Any]) -> list[StreamEvent]:
        choices = chunk.get("choices")
        if choices and chunk.get("usage") is None and not chunk.get("error"):
            # Most chunks of a stream carry a piece of text and nothing else; this is what the
            # general path below makes of them, at a third of its cost.
            choice = choices[0]
            delta = choice.get("delta") if type(choice) is dict else None
            if (
                type(delta) is dict
                and delta.keys() <= _TEXT_ONLY
                and type(content := delta.get("content", "")) is str
                and choice.get("finish_reason") is None
                and choice.get("usage") is None
            ):
                if not content:
                    return []
                self.text.append(content)
                return [TextDelta(content)]
        if chunk.get("error"):
            raise classify_error(None, dict(chunk), {}, self.provider, midstream=True)
        usage = parse_usage(chunk.get("usage"))
        events: list[StreamEvent] = []
        choices = chunk.get("choices") or []
        choice = choices[0] if choices and isinstance(choices[0], dict) else None
        if choice is not None:
            usage = usage or parse_usage(choice.get("usage"))
            self._delta(choice.get("delta") or {}, events)
            reason = choice.get("finish_reason")
            if reason == "error":
                # An error finish without an `error` object (Mistral, some OpenRouter upstreams).
                raise ProviderError(
                    ErrorClass.SERVER_ERROR,
                    "upstream ended the stream with finish_reason=error",
                    provider=self.provider,
                )
            if reason:
                self._finish = reason
                events.extend(self._flush_calls())
        if usage is not None:
            self._usage = usage
        return events

    def _delta(self, delta: Mapping[str, Any], events: list[StreamEvent]) -> None:
        reasoning = delta.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            self._reasoning.append(reasoning)
            events.append(ReasoningDelta(reasoning))
        elif isinstance(delta.get("reasoning"), str) and delta["reasoning"]:
            events.append(ReasoningDelta(delta["reasoning"]))
        for position, piece in enumerate(_entries(delta.get("reasoning_details"))):
            index = piece.get("index")
            _merge_detail(self._details.setdefault(index if isinstance(index, int) else position, {}), piece)
        content = content_text(delta.get("content"))
        if content:
            self.text.append(content)
            events.append(TextDelta(content))
        refusal = delta.get("refusal")
        if refusal:
            self._refused = True
            events.append(RefusalDelta(refusal))
        for position, raw in enumerate(delta.get("tool_calls") or []):
            if not isinstance(raw, dict):
                raise ProviderError(
                    ErrorClass.SERVER_ERROR,
                    "malformed upstream chunk: tool call is not an object",
                    provider=self.provider,
                )
            index = raw.get("index", position)
            fn = raw.get("function") or {}
            pending = self._calls.get(index)
            if pending is None:
                call_id = raw.get("id") or f"call_{index}"
                pending = _PendingCall(id=self._ids.get(call_id, call_id), name=fn.get("name") or "")
                self._calls[index] = pending
                events.append(ToolCallStart(index=index, id=pending.id, name=pending.name))
            fragment = fn.get("arguments")
            if fragment:
                pending.arguments.append(fragment)
                events.append(ToolCallDelta(index=index, arguments=fragment))

    def _flush_calls(self) -> list[StreamEvent]:
        """The turn's completed artifacts and calls, once: at its finish reason or at `[DONE]`."""
        if self._flushed:
            return []
        self._flushed = True
        events: list[StreamEvent] = []
        if self._reasoning:
            artifact = ReasoningContent(origin=self._origin, text="".join(self._reasoning))
            events.append(ReasoningArtifactDone(artifact))
        events += [
            ReasoningArtifactDone(ReasoningDetail(origin=self._origin, detail=entry))
            for _, entry in sorted(self._details.items())
        ]
        return events + [
            ToolCallDone(index=i, call=ToolCall(id=c.id, name=c.name, arguments="".join(c.arguments)))
            for i, c in sorted(self._calls.items())
        ]

    def finish(self) -> list[StreamEvent]:
        """Call on `[DONE]`: the completed calls not yet flushed, usage, then `Finish`."""
        self.done = True
        events = self._flush_calls()
        if self._usage is not None:
            events.append(UsageUpdate(self._usage))
        reason = finish_reason(self._finish, refused=self._refused)
        if self._finish is None and self._calls:
            reason = FinishReason.TOOL_CALLS
        events.append(Finish(reason))
        return events

    @property
    def finish_reason(self) -> FinishReason:
        return finish_reason(self._finish, refused=self._refused)
