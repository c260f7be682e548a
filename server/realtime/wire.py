"""Client events of the OpenAI Realtime protocol subset we speak, parsed with typed errors.

`parse_client_event(text)` returns a typed event or raises `WireError` carrying the wire
error (`type`, `code`, `param`, and the client's `event_id` when it could be read), so the
connection answers with an `error` event and reads on. `input_audio_buffer.append` is the
hot path (50 a second per session): it skips pydantic and is decoded by hand.

Unknown fields are ignored everywhere, as OpenAI does; unknown event types are an error.
Both the GA session shape (`session.audio.input.format`, ...) and the beta one (flat
`input_audio_format`, top-level `turn_detection`) are accepted in `session.update`.
`conversation.item.create` is parsed by its item's `type` (`message`, `function_call`,
`function_call_output`), so an error names the field as the client wrote it (`item.call_id`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from foundation import b64


class WireError(Exception):
    def __init__(
        self,
        code: str,
        message: str,
        *,
        param: str | None = None,
        event_id: str | None = None,
        type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.type = type
        self.code = code
        self.message = message
        self.param = param
        self.event_id = event_id


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class FormatSpec(_Model):
    type: Literal["audio/pcm", "audio/pcmu", "audio/pcma"]
    rate: int | None = None


class TurnDetectionSpec(_Model):
    type: Literal["server_vad", "semantic_vad"] = "server_vad"
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    prefix_padding_ms: int | None = Field(default=None, ge=0, le=5000)
    silence_duration_ms: int | None = Field(default=None, ge=0, le=10_000)
    create_response: bool | None = None
    interrupt_response: bool | None = None
    eagerness: Literal["low", "medium", "high", "auto"] | None = None


class InputAudioSpec(_Model):
    format: FormatSpec | None = None
    turn_detection: TurnDetectionSpec | None = None


class OutputAudioSpec(_Model):
    format: FormatSpec | None = None
    voice: str | None = Field(default=None, max_length=200)


class AudioSpec(_Model):
    input: InputAudioSpec | None = None
    output: OutputAudioSpec | None = None


BetaFormat = Literal["pcm16", "g711_ulaw", "g711_alaw"]
FUNCTION_NAME = r"^[a-zA-Z0-9_-]{1,64}$"
"""What OpenAI accepts as a function name; other providers accept at least these."""


class FunctionToolSpec(_Model):
    type: Literal["function"] = "function"
    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = Field(default=None, max_length=10_000)
    parameters: dict[str, Any] | None = None


class SessionPatch(_Model):
    """`session.update`'s `session`; which fields were sent is in `model_fields_set`
    (`turn_detection: null` means manual mode, an absent one means unchanged)."""

    type: Literal["realtime"] | None = None
    instructions: str | None = Field(default=None, max_length=100_000)
    output_modalities: list[Literal["audio", "text"]] | None = None
    modalities: list[Literal["audio", "text"]] | None = None
    audio: AudioSpec | None = None
    input_audio_format: BetaFormat | None = None
    output_audio_format: BetaFormat | None = None
    turn_detection: TurnDetectionSpec | None = None
    voice: str | None = Field(default=None, max_length=200)
    max_output_tokens: int | Literal["inf"] | None = None
    max_response_output_tokens: int | Literal["inf"] | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    tools: list[FunctionToolSpec] | None = Field(default=None, max_length=128)
    tool_choice: Any = None
    """`auto` | `none` | `required` | `{type: "function", name}`; read by `session_wire`, which
    names the offending part in its error."""


class ContentSpec(_Model):
    type: Literal["input_text", "text", "output_text", "input_audio", "audio", "output_audio"]
    text: str | None = Field(default=None, max_length=100_000)
    transcript: str | None = Field(default=None, max_length=100_000)


class ItemSpec(_Model):
    id: str | None = Field(default=None, max_length=64)
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system"]
    content: list[ContentSpec] = Field(min_length=1, max_length=16)


class FunctionCallSpec(_Model):
    id: str | None = Field(default=None, max_length=64)
    type: Literal["function_call"]
    call_id: str | None = Field(default=None, min_length=1, max_length=256)
    name: str = Field(pattern=FUNCTION_NAME)
    arguments: str = Field(default="", max_length=100_000)


class FunctionCallOutputSpec(_Model):
    id: str | None = Field(default=None, max_length=64)
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1, max_length=256)
    output: str = Field(max_length=100_000)


class ResponseSpec(_Model):
    """What `response.create` may change for that response alone."""

    instructions: str | None = Field(default=None, max_length=100_000)
    output_modalities: list[Literal["audio", "text"]] | None = None
    modalities: list[Literal["audio", "text"]] | None = None
    tools: list[FunctionToolSpec] | None = Field(default=None, max_length=128)
    tool_choice: Any = None
    max_output_tokens: Annotated[int, Field(ge=1)] | Literal["inf"] | None = None
    max_response_output_tokens: Annotated[int, Field(ge=1)] | Literal["inf"] | None = None


class SessionUpdate(_Model):
    type: Literal["session.update", "transcription_session.update"]
    event_id: str | None = None
    session: SessionPatch


class _ItemCreate(_Model):
    type: Literal["conversation.item.create"]
    event_id: str | None = None
    previous_item_id: str | None = None


class ItemCreate(_ItemCreate):
    item: ItemSpec


class FunctionCallCreate(_ItemCreate):
    item: FunctionCallSpec


class FunctionCallOutputCreate(_ItemCreate):
    item: FunctionCallOutputSpec


class ItemTruncate(_Model):
    type: Literal["conversation.item.truncate"]
    event_id: str | None = None
    item_id: str
    content_index: int = Field(default=0, ge=0)
    audio_end_ms: int = Field(ge=0)


class ItemRef(_Model):
    type: Literal["conversation.item.delete", "conversation.item.retrieve"]
    event_id: str | None = None
    item_id: str


class ResponseCreate(_Model):
    type: Literal["response.create"]
    event_id: str | None = None
    response: ResponseSpec | None = None


class ResponseCancel(_Model):
    type: Literal["response.cancel"]
    event_id: str | None = None
    response_id: str | None = None


class Bare(_Model):
    """Events with no payload of their own."""

    type: Literal[
        "input_audio_buffer.commit", "input_audio_buffer.clear", "output_audio_buffer.clear", "patchbay.ping"
    ]
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class AudioAppend:
    audio: bytes
    event_id: str | None


ClientEvent = (
    SessionUpdate
    | ItemCreate
    | FunctionCallCreate
    | FunctionCallOutputCreate
    | ItemTruncate
    | ItemRef
    | ResponseCreate
    | ResponseCancel
    | Bare
    | AudioAppend
)

_MODELS: dict[str, type[_Model]] = {
    "session.update": SessionUpdate,
    "transcription_session.update": SessionUpdate,
    "conversation.item.create": ItemCreate,
    "conversation.item.truncate": ItemTruncate,
    "conversation.item.delete": ItemRef,
    "conversation.item.retrieve": ItemRef,
    "response.create": ResponseCreate,
    "response.cancel": ResponseCancel,
    "input_audio_buffer.commit": Bare,
    "input_audio_buffer.clear": Bare,
    "output_audio_buffer.clear": Bare,
    "patchbay.ping": Bare,  # ours: answered with `patchbay.pong` (a client's liveness check)
}
_ITEM_CREATES: dict[str, type[_Model]] = {
    "message": ItemCreate,
    "function_call": FunctionCallCreate,
    "function_call_output": FunctionCallOutputCreate,
}
APPEND = "input_audio_buffer.append"


def parse_client_event(text: str | bytes) -> ClientEvent:
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise WireError("invalid_json", "the message is not valid JSON") from None
    if not isinstance(message, dict):
        raise WireError("invalid_event", "an event must be a JSON object")
    event_id = message.get("event_id")
    event_id = event_id if isinstance(event_id, str) and len(event_id) <= 128 else None
    kind = message.get("type")
    if kind == APPEND:
        return AudioAppend(_audio(message, event_id), event_id)
    if not isinstance(kind, str):
        raise WireError("invalid_event", "an event needs a string `type`", param="type", event_id=event_id)
    model = _MODELS.get(kind)
    if model is None:
        raise WireError(
            "unknown_event_type", f"unknown event type {kind[:64]!r}", param="type", event_id=event_id
        )
    if model is ItemCreate:
        model = _item_create_model(message, event_id)
    try:
        return model.model_validate(message)  # type: ignore[return-value]
    except ValidationError as exc:
        raise _validation_error(exc, event_id) from None


def _item_create_model(message: dict[str, Any], event_id: str | None) -> type[_Model]:
    item = message.get("item")
    kind = item.get("type", "message") if isinstance(item, dict) else "message"
    model = _ITEM_CREATES.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise WireError(
            "invalid_value",
            f"item.type must be one of {', '.join(_ITEM_CREATES)}",
            param="item.type",
            event_id=event_id,
        )
    return model


def _audio(message: dict[str, Any], event_id: str | None) -> bytes:
    audio = message.get("audio")
    if not isinstance(audio, str):
        raise WireError("invalid_value", "`audio` must be a base64 string", param="audio", event_id=event_id)
    try:
        return b64.decode(audio)
    except b64.Error:
        raise WireError(
            "invalid_base64", "`audio` is not valid base64", param="audio", event_id=event_id
        ) from None


_TYPE_TAGS = frozenset({"int", "str", "float", "bool", "list", "dict", "none"})


def _union_tag(part: object) -> bool:
    """A step pydantic adds to an error's location for the union member that refused the value
    (`constrained-int`, `literal['inf']`): not a field the client sent."""
    return isinstance(part, str) and (part in _TYPE_TAGS or not part.isidentifier())


def _validation_error(exc: ValidationError, event_id: str | None) -> WireError:
    first: Any = exc.errors(include_url=False, include_input=False)[0]
    param = ".".join(str(part) for part in first.get("loc", ()) if not _union_tag(part))
    # The message names the field and the rule, never echoes the value (it may be a transcript).
    return WireError(
        "invalid_value",
        f"{param or 'event'}: {first.get('msg', 'invalid')}",
        param=param or None,
        event_id=event_id,
    )
