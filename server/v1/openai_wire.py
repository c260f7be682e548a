"""The OpenAI Chat Completions request as Patchbay accepts it (pydantic, validated once at the edge).

Unknown top-level fields are accepted and ignored (SDKs add new ones faster than we could
list them); docs/api.md lists what is honoured. Content parts, tools, tool choice and
response formats are validated strictly, since a silently dropped image or schema would
change the answer.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_TOKENS_LIMIT = 2**31 - 1
"""Above any model's output limit; a bigger count cannot be sent upstream (JSON encoders stop at 64 bits)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class TextContent(_Strict):
    type: Literal["text"]
    text: str


class ImageURL(_Strict):
    url: str = Field(min_length=1)
    detail: Literal["auto", "low", "high"] | None = None


class ImageContent(_Strict):
    type: Literal["image_url"]
    image_url: ImageURL


class InputAudio(_Strict):
    data: str
    format: str


class AudioContent(_Strict):
    type: Literal["input_audio"]
    input_audio: InputAudio


ContentPart = Annotated[TextContent | ImageContent | AudioContent, Field(discriminator="type")]


class FunctionCall(_Strict):
    name: str
    arguments: str = ""


class ToolCallIn(_Strict):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall
    extra_content: dict[str, Any] | None = None
    """Gemini's OpenAI-compatible endpoint returns the call's thought signature here."""


class MessageIn(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None
    reasoning_content: str | None = None
    """Readable reasoning of an assistant turn, as we sent it: display only, never replayed."""
    reasoning_details: list[dict[str, Any]] | None = None
    """The assistant turn's reasoning artifacts, as we sent them (server/v1/reasoning_wire.py)."""


class FunctionDef(_Strict):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolIn(_Strict):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(_Strict):
    name: str


class NamedToolChoiceIn(_Strict):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaIn(_Strict):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormatIn(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaIn | None = None


class StreamOptions(_Strict):
    include_usage: bool = False


class ChatCompletionRequest(_Strict):
    model: str = Field(min_length=1, max_length=255)
    messages: list[MessageIn] = Field(min_length=1)
    tools: list[ToolIn] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoiceIn | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormatIn | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    n: int | None = Field(default=None, ge=1, le=1)
    """Only one choice is supported; `n` > 1 is refused rather than silently answered once."""
    user: str | None = None
    metadata: dict[str, str] | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
