"""Typed events a voice session emits, in the order a client must see them.

Events are transport-neutral: `server.realtime` maps each to its OpenAI Realtime JSON, a
telephony bridge could map them to its own wire. Whether an event is dropped by barge-in
or `response.cancel` is a property of its type: subclasses of `CancellableOutput` belong to
one response's streamed output, and once that response is cancelled none of them may
reach the client (see `voice.outbox.Outbox`). Lifecycle events (`ResponseDone`,
`OutputItemDone`, ...) are never dropped, so a client always learns how a response ended.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from voice.history import Item


@dataclass(frozen=True, slots=True)
class SessionEvent:
    cancellable: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class SpeechStarted(SessionEvent):
    item_id: str
    audio_start_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStopped(SessionEvent):
    item_id: str
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class InputCommitted(SessionEvent):
    item_id: str
    previous_item_id: str | None


@dataclass(frozen=True, slots=True)
class InputCleared(SessionEvent):
    pass


@dataclass(frozen=True, slots=True)
class ItemCreated(SessionEvent):
    item: Item
    previous_item_id: str | None


@dataclass(frozen=True, slots=True)
class ItemTruncated(SessionEvent):
    item_id: str
    content_index: int
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class ItemDeleted(SessionEvent):
    item_id: str


@dataclass(frozen=True, slots=True)
class InputTranscriptCompleted(SessionEvent):
    item_id: str
    transcript: str
    audio_seconds: float


@dataclass(frozen=True, slots=True)
class InputTranscriptFailed(SessionEvent):
    item_id: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ResponseCreated(SessionEvent):
    response_id: str
    modalities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OutputItemAdded(SessionEvent):
    """A response's output item begins: its message (at the first words) or a function call."""

    response_id: str
    item: Item
    output_index: int = 0


@dataclass(frozen=True, slots=True)
class CancellableOutput(SessionEvent):
    """Streamed output of one response: dropped once that response is cancelled."""

    cancellable: ClassVar[bool] = True
    response_id: str
    item_id: str


@dataclass(frozen=True, slots=True)
class AudioDelta(CancellableOutput):
    audio: bytes
    """Encoded in the session's output format."""


@dataclass(frozen=True, slots=True)
class TranscriptDelta(CancellableOutput):
    text: str


@dataclass(frozen=True, slots=True)
class TextDelta(CancellableOutput):
    text: str


@dataclass(frozen=True, slots=True)
class FunctionCallArgumentsDelta(CancellableOutput):
    """A piece of a function call's JSON arguments, as the model writes them."""

    call_id: str
    delta: str
    output_index: int


@dataclass(frozen=True, slots=True)
class OutputItemDone(SessionEvent):
    """Closes an output item: `audio` says whether audio and transcript parts were open; a
    function call item carries its final arguments."""

    response_id: str
    item: Item
    audio: bool
    text: str
    output_index: int = 0


@dataclass(frozen=True, slots=True)
class ResponseDone(SessionEvent):
    response_id: str
    status: str
    """completed | cancelled | failed | incomplete"""
    reason: str | None
    output: tuple[Item, ...]
    input_tokens: int = 0
    output_tokens: int = 0
    metadata: Mapping[str, Any] = field(default_factory=dict)
    error_code: str | None = None
    error_type: str | None = None
    """None: `server_error`."""


@dataclass(frozen=True, slots=True)
class ErrorEvent(SessionEvent):
    """A problem the client should know about; the session goes on."""

    type: str
    code: str
    message: str
    param: str | None = None
    event_id: str | None = None
