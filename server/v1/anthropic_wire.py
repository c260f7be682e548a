"""The Anthropic Messages request as `/v1/messages` accepts it (pydantic, validated at the edge).

Content blocks are a discriminated union of the kinds routed providers can all carry: text,
image (base64 or URL), tool_use, tool_result, and the reasoning blocks `thinking` and
`redacted_thinking` of assistant turns. Other kinds (documents) are refused with a 400 rather
than dropped.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from server.v1.openai_wire import MAX_TOKENS_LIMIT


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class TextBlock(_Wire):
    type: Literal["text"]
    text: str


class Base64Source(_Wire):
    type: Literal["base64"]
    media_type: str
    data: str


class URLSource(_Wire):
    type: Literal["url"]
    url: str


class ImageBlock(_Wire):
    type: Literal["image"]
    source: Annotated[Base64Source | URLSource, Field(discriminator="type")]


class ToolUseBlock(_Wire):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)


class ToolResultBlock(_Wire):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[Annotated[TextBlock | ImageBlock, Field(discriminator="type")]] | None = None
    is_error: bool | None = None


class ThinkingBlockIn(_Wire):
    type: Literal["thinking"]
    thinking: str
    signature: str


class RedactedThinkingIn(_Wire):
    type: Literal["redacted_thinking"]
    data: str


Block = Annotated[
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlockIn | RedactedThinkingIn,
    Field(discriminator="type"),
]


class MessageParam(_Wire):
    role: Literal["user", "assistant"]
    content: str | list[Block]


class ToolParam(_Wire):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    input_schema: dict[str, Any]


class ToolChoiceParam(_Wire):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class ThinkingParam(_Wire):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)


class MessagesRequest(_Wire):
    model: str = Field(min_length=1, max_length=255)
    max_tokens: int = Field(ge=1, le=MAX_TOKENS_LIMIT)
    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoiceParam | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    stream: bool = False
    metadata: dict[str, Any] | None = None
    thinking: ThinkingParam | None = None
