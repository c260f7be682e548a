"""ElevenLabs' WebSocket input-streaming TTS wire (`stream-input`), as pure functions.

`wss://{host}/v1/text-to-speech/{voice_id}/stream-input?model_id=…&output_format=…`, the key in
the `xi-api-key` header of the upgrade request (never in a message). Client messages, as the
official SDK's types define them (`elevenlabs.types.InitializeConnection`, `SendText`,
`CloseConnection`): first `{"text": " ", "voice_settings": …, "generation_config":
{"chunk_length_schedule": […]}}`, then the reply's words as they are written, each message
ending with one space (`{"text": "<words> "}`, with `"flush": true` where the caller wants what
is buffered generated now), and `{"text": ""}` to end the input. The provider buffers text
and generates when the buffer reaches the schedule's next step, on a flush, or at the end;
`GenerationSchedule` mirrors that so the client knows when audio is due. Server
messages (`AudioOutput`, `FinalOutput`): `{"audio": base64, "alignment": {"chars": […], …},
"normalizedAlignment": …}` and `{"isFinal": true}`; a failure is a message with `message`
(and often `error`) followed by a close, or a close code alone. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import orjson
import pydantic

from foundation import b64
from providers.contract import ErrorClass
from providers.errors import ProviderError
from providers.speech.elevenlabs import ElevenLabsTTSOptions
from providers.speech.errors import ELEVENLABS_CODES, scrub

INACTIVITY_TIMEOUT = 180
"""Seconds the provider keeps an idle connection (its maximum; default 20): a reply whose LLM
pauses for a tool call must not lose its voice."""

CLOSE_INPUT = b'{"text":""}'


def stream_input_url(base_url: str, voice_id: str, options: ElevenLabsTTSOptions) -> str:
    """The WebSocket URL for `base_url` (`https://api.elevenlabs.io` → `wss://…`)."""
    parts = urlsplit(base_url.rstrip("/"))
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    query = {
        "model_id": options.model_id,
        "output_format": options.output_format,
        "inactivity_timeout": str(INACTIVITY_TIMEOUT),
    }
    if options.language_code is not None:
        query["language_code"] = options.language_code
    path = f"{parts.path}/v1/text-to-speech/{quote(voice_id, safe='')}/stream-input"
    return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))


def init_message(options: ElevenLabsTTSOptions) -> bytes:
    body: dict[str, Any] = {
        "text": " ",
        "generation_config": {"chunk_length_schedule": list(options.chunk_length_schedule)},
    }
    if options.voice_settings is not None:
        body["voice_settings"] = options.voice_settings.to_wire()
    return orjson.dumps(body)


def wire_text(text: str) -> str:
    """Text as a message carries it: whitespace runs as one space, ending with one space as
    the API asks; "" when there is nothing to say."""
    words = " ".join(text.split())
    return words + " " if words else ""


def text_message(text: str, *, flush: bool = False) -> bytes:
    """Words to speak next (`text` as `wire_text` made it); `flush`: generate the buffer now."""
    body: dict[str, Any] = {"text": text}
    if flush:
        body["flush"] = True
    return orjson.dumps(body)


@dataclass(slots=True)
class GenerationSchedule:
    """The provider's text buffer as the client can know it: which send starts a generation.

    The provider generates when the characters buffered since its last generation reach the
    schedule's next step (the first step for the first generation, the last one from then
    on), on a flush, and when the input ends.
    """

    steps: tuple[int, ...]
    buffered: int = 0
    generations: int = 0

    def add(self, characters: int, *, flush: bool = False) -> bool:
        """Buffer `characters`; True when this starts a generation."""
        self.buffered += characters
        step = self.steps[min(self.generations, len(self.steps) - 1)]
        if self.buffered and (flush or self.buffered >= step):
            self.generations += 1
            self.buffered = 0
            return True
        return False


class _Alignment(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore")
    chars: list[str] | None = None


class _ServerMessage(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore", populate_by_name=True)
    audio: str | None = None
    is_final: bool | None = pydantic.Field(default=None, alias="isFinal")
    alignment: _Alignment | None = None
    message: str | None = None
    error: str | None = None
    code: int | str | None = None


@dataclass(frozen=True, slots=True)
class AudioChunk:
    audio: bytes
    text: str
    """The input characters this audio speaks (from `alignment`), "" when the message had none."""


@dataclass(frozen=True, slots=True)
class Final:
    pass


@dataclass(frozen=True, slots=True)
class Failure:
    message: str
    code: str | None


ServerEvent = AudioChunk | Final | Failure | None


def parse_server_message(raw: str | bytes) -> ServerEvent:
    """One server message; None for one that carries nothing we use (e.g. `audio: null`)."""
    try:
        msg = _ServerMessage.model_validate_json(raw)
    except pydantic.ValidationError:
        return Failure("the provider sent a message that is not JSON", None)
    if msg.message is not None or msg.error is not None:
        code = msg.error if msg.error is not None else None
        return Failure(msg.message or msg.error or "error", code)
    if msg.audio:
        try:
            audio = b64.decode(msg.audio)
        except b64.Error:
            return Failure("the provider sent audio that is not base64", None)
        text = "".join(msg.alignment.chars or ()) if msg.alignment is not None else ""
        return AudioChunk(audio, text)
    if msg.is_final:
        return Final()
    return None


def stream_error(
    *,
    provider: str,
    close_code: int | None,
    message: str = "",
    code: str | None = None,
    secrets: tuple[str, ...] = (),
) -> ProviderError:
    """An error message and/or close code as a `ProviderError`, classified for fallback.

    The provider reports a refused key, exhausted quota or bad parameter as a message and a
    1008 (policy) close; a server fault as 1011; overload as 1013. The message's `error`
    code, when it is one of the REST API's, decides first.
    """
    lowered = message.lower()
    if code is not None and code in ELEVENLABS_CODES:
        error_class = ELEVENLABS_CODES[code]
    elif "quota" in lowered or "credits" in lowered:
        error_class = ErrorClass.QUOTA_EXHAUSTED
    elif "api key" in lowered or "api_key" in lowered or "unauthori" in lowered:
        error_class = ErrorClass.AUTH
    elif "timeout" in lowered or "timed out" in lowered:
        error_class = ErrorClass.TIMEOUT
    elif close_code == 1013 or "busy" in lowered:
        error_class = ErrorClass.OVERLOADED
    elif close_code == 1008:
        error_class = ErrorClass.INVALID_REQUEST
    elif close_code == 1011:
        error_class = ErrorClass.SERVER_ERROR
    else:
        error_class = ErrorClass.NETWORK
    text = scrub(message, secrets) if message else f"connection closed ({close_code or 'no code'})"
    return ProviderError(error_class, text, provider=provider, provider_code=code)
