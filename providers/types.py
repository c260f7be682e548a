"""Normalized chat types shared by every adapter.

Adapters translate these to and from their wire format with pure functions. They are
frozen dataclasses: cheap to build on the hot path, hashable where it matters, and never
carrying a credential.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

JSONObject = dict[str, Any]


class Role(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str
    type: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image by URL; `data:` URLs carry inline bytes (adapters split them for wires that need it)."""

    url: str
    detail: str | None = None
    type: Literal["image"] = "image"


@dataclass(frozen=True, slots=True)
class AudioPart:
    data_b64: str
    format: str  # "wav" | "mp3" | ...
    type: Literal["audio"] = "audio"


ContentPart = TextPart | ImagePart | AudioPart


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str
    """The raw JSON text of the arguments, as the model produced it."""

    def parsed_arguments(self) -> JSONObject:
        import json

        if not self.arguments.strip():
            return {}
        value = json.loads(self.arguments)
        if not isinstance(value, dict):
            raise ValueError("tool-call arguments are not a JSON object")
        return value


def reasoning_origin(protocol: str, provider: str) -> str:
    """The tag binding a reasoning artifact to its producer: `<wire protocol>:<provider id>`.

    Artifacts are replayed only to the origin that produced them: a signature is verified by the
    provider that issued it, and a strict OpenAI-compatible server rejects a `reasoning_content`
    it never sent (docs/api.md, "Reasoning").
    """
    return f"{protocol}:{provider}"


@dataclass(frozen=True, slots=True)
class ThinkingBlock:
    """Anthropic `thinking` block: replayed byte for byte, the signature covers the text."""

    origin: str
    thinking: str
    signature: str


@dataclass(frozen=True, slots=True)
class RedactedThinking:
    """Anthropic `redacted_thinking` block: encrypted reasoning, replayed as is."""

    origin: str
    data: str


@dataclass(frozen=True, slots=True)
class ThoughtSignature:
    """Gemini `thoughtSignature`, bound to the part it came on.

    `tool_call_id` names the function call whose part carried it; None means the turn's text.
    """

    origin: str
    signature: str
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ReasoningContent:
    """`reasoning_content` of an OpenAI-wire assistant turn (Kimi, DeepSeek, xAI), which some
    servers require back on assistant turns with tool calls."""

    origin: str
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDetail:
    """One `reasoning_details` entry of an OpenAI-wire assistant turn (OpenRouter), kept verbatim.

    `detail` is the provider's own entry (`reasoning.text`, `reasoning.summary`,
    `reasoning.encrypted`, with its `id`, `format` and `index`), replayed unmodified on the
    assistant message, as OpenRouter asks. A streamed entry is the merge of its pieces; its
    `index` is kept, since a non-streamed turn carries it too and it still matches the entry's
    position when the turn's entries are replayed in order.
    """

    origin: str
    detail: Mapping[str, Any]


ReasoningArtifact = ThinkingBlock | RedactedThinking | ThoughtSignature | ReasoningContent | ReasoningDetail


@dataclass(frozen=True, slots=True)
class Reasoning:
    """An assistant turn's reasoning.

    `text` is the readable reasoning (thinking text, thought summaries, reasoning_content) for
    display; it is never sent upstream on its own. `artifacts` are what the producing provider
    wants back on the next request, each tagged with its origin (`reasoning_origin`).
    """

    text: str = ""
    artifacts: tuple[ReasoningArtifact, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.text or self.artifacts)

    def bound_to(self, origin: str) -> tuple[ReasoningArtifact, ...]:
        """The artifacts that may be replayed to `origin`; foreign ones are dropped."""
        return tuple(a for a in self.artifacts if a.origin == origin)


NO_REASONING = Reasoning()


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: tuple[ContentPart, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    reasoning: Reasoning = NO_REASONING
    """Only on assistant turns: what the model reasoned, as the client sent it back."""

    @property
    def text(self) -> str:
        content = self.content
        if len(content) == 1 and content[0].__class__ is TextPart:  # most messages: one text part
            return content[0].text
        return "".join(p.text for p in content if isinstance(p, TextPart))


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    strict: bool | None = None


ToolChoiceMode = Literal["auto", "none", "required"]


@dataclass(frozen=True, slots=True)
class NamedToolChoice:
    name: str


ToolChoice = ToolChoiceMode | NamedToolChoice


@dataclass(frozen=True, slots=True)
class JsonSchemaFormat:
    name: str
    schema: Mapping[str, Any]
    strict: bool = True
    description: str | None = None


@dataclass(frozen=True, slots=True)
class JsonObjectFormat:
    pass


ResponseFormat = JsonSchemaFormat | JsonObjectFormat

ReasoningEffort = Literal["minimal", "low", "medium", "high"]


@dataclass(frozen=True, slots=True)
class ReasoningConfig:
    """The caller asks the model to think: by `effort`, by `budget_tokens`, or (neither) by default."""

    effort: ReasoningEffort | None = None
    budget_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A provider-neutral chat request. `model` is the upstream model id (no provider prefix)."""

    model: str
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    stop: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    reasoning: ReasoningConfig | None = None

    @property
    def needs_vision(self) -> bool:
        return self._carries(ImagePart)

    @property
    def needs_audio(self) -> bool:
        return self._carries(AudioPart)

    def _carries(self, kind: type) -> bool:
        # A plain loop: it runs over every part of the history a client resends each turn.
        for message in self.messages:
            for part in message.content:
                if isinstance(part, kind):
                    return True
        return False


class FinishReason(StrEnum):
    STOP = "stop"
    TOOL_CALLS = "tool_calls"
    LENGTH = "length"
    CONTENT_FILTER = "content_filter"
    PAUSE = "pause"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts normalized the same way for every provider.

    `input_tokens` is the whole prompt (cache reads and writes included); `cached_input_tokens`
    and `reasoning_tokens` are subsets of input and output respectively.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    provider_cost: float | None = None
    """What the provider says the call cost in its own credits (OpenRouter's `usage.cost`), when it says."""

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class ChatResponse:
    text: str
    tool_calls: tuple[ToolCall, ...]
    finish_reason: FinishReason
    usage: Usage
    model: str
    refusal: str | None = None
    response_id: str | None = None
    parsed: Any = None
    """The validated JSON value when the request asked for structured output."""
    reasoning: Reasoning = NO_REASONING


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class RefusalDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallStart:
    index: int
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    index: int
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolCallDone:
    index: int
    call: ToolCall


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of readable reasoning text."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningArtifactDone:
    """One complete reasoning artifact (a signed thinking block, a thought signature, ...).

    A Gemini signature bound to a tool call arrives before that call's `ToolCallStart`.
    """

    artifact: ReasoningArtifact


@dataclass(frozen=True, slots=True)
class UsageUpdate:
    usage: Usage


@dataclass(frozen=True, slots=True)
class Finish:
    reason: FinishReason


@dataclass(frozen=True, slots=True)
class StreamError:
    """An error after output started. Adapters raise `ProviderError`; surfaces turn it into this."""

    error: Exception


StreamEvent = (
    TextDelta
    | RefusalDelta
    | ReasoningDelta
    | ReasoningArtifactDone
    | ToolCallStart
    | ToolCallDelta
    | ToolCallDone
    | UsageUpdate
    | Finish
    | StreamError
)

OUTPUT_EVENTS = (
    TextDelta,
    RefusalDelta,
    ReasoningDelta,
    ReasoningArtifactDone,
    ToolCallStart,
    ToolCallDelta,
    ToolCallDone,
)
"""Events that count as output reaching the caller: after one of these, no fallback."""
