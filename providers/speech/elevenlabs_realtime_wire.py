"""ElevenLabs' realtime speech-to-text wire (Scribe v2 Realtime), as pure functions.

`wss://{host}/v1/speech-to-text/realtime?model_id=…&audio_format=pcm_16000&commit_strategy=manual`,
the key in the `xi-api-key` header of the upgrade request (never in a message or the URL). The
query is built as the official SDK builds it (`elevenlabs.realtime.scribe.ScribeRealtime`:
`model_id`, `audio_format`, `commit_strategy`, then the options). Client messages are the SDK's
`InputAudioChunkPayload`: `{"message_type": "input_audio_chunk", "audio_base_64": …, "commit":
false, "sample_rate": …}`, and the commit is the same message with no audio and `"commit": true`.
Server messages are told apart by `message_type` (the SDK's `ReceiveTranscription` union):
`session_started`, `partial_transcript` (interim, may change), `committed_transcript` (final for
the audio up to the commit), and the error payloads (`auth_error`, `quota_exceeded`,
`rate_limited`, …, each with `error`), after which the provider closes the socket. The error
types are classified by the speech error table (`providers.speech.errors.ELEVENLABS_CODES`).
No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import orjson
import pydantic

from foundation import b64

REALTIME_MODELS = frozenset({"scribe_v2_realtime", "scribe_v3_live"})
"""The Scribe models served over the realtime WebSocket (the SDK's `model_id` literals)."""

DEFAULT_MODEL = "scribe_v2_realtime"

PCM_RATES = frozenset({8000, 16000, 22050, 24000, 44100, 48000})
"""The `pcm_<rate>` audio formats the endpoint accepts (the SDK's `AudioFormat`)."""

FALLBACK_RATE = 16_000
"""Audio at a rate the endpoint does not take is resampled to this one."""

MAX_CHUNK_BYTES = 8192
"""At most this much PCM per message (the SDK's own streaming helper sends 8 KiB chunks)."""

EMPTY_AUDIO = "insufficient_audio_activity"
"""The error the provider answers a commit of audio without speech with: an empty transcript."""


def is_realtime_model(model: str | None) -> bool:
    return model in REALTIME_MODELS


def wire_rate(sample_rate: int) -> int:
    """The rate a stream declares for audio fed at `sample_rate` (resampled when they differ)."""
    return sample_rate if sample_rate in PCM_RATES else FALLBACK_RATE


def realtime_url(base_url: str, *, model_id: str, sample_rate: int, language: str | None) -> str:
    """The WebSocket URL for `base_url` (`https://api.elevenlabs.io` → `wss://…`)."""
    parts = urlsplit(base_url.rstrip("/"))
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    query = [
        ("model_id", model_id),
        ("audio_format", f"pcm_{sample_rate}"),
        ("commit_strategy", "manual"),
    ]
    if language:
        query.append(("language_code", language))
    query.append(("include_timestamps", "false"))
    path = f"{parts.path}/v1/speech-to-text/realtime"
    return urlunsplit((scheme, parts.netloc, path, urlencode(query, quote_via=quote), ""))


def audio_message(pcm: bytes, sample_rate: int) -> bytes:
    return orjson.dumps(
        {
            "message_type": "input_audio_chunk",
            "audio_base_64": b64.encode(pcm),
            "commit": False,
            "sample_rate": sample_rate,
        }
    )


def commit_message(sample_rate: int) -> bytes:
    return orjson.dumps(
        {"message_type": "input_audio_chunk", "audio_base_64": "", "commit": True, "sample_rate": sample_rate}
    )


class _ServerMessage(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore")
    message_type: str | None = None
    text: str | None = None
    error: str | None = None
    language_code: str | None = None


@dataclass(frozen=True, slots=True)
class Started:
    pass


@dataclass(frozen=True, slots=True)
class Partial:
    text: str


@dataclass(frozen=True, slots=True)
class Committed:
    text: str
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    message: str
    code: str | None
    """The error's `message_type` (`auth_error`, `quota_exceeded`, …), None if it had none."""


ServerEvent = Started | Partial | Committed | Failure | None


def parse_server_message(raw: str | bytes) -> ServerEvent:
    """One server message; None for one that carries nothing we use (timestamps, warnings)."""
    try:
        msg = _ServerMessage.model_validate_json(raw)
    except pydantic.ValidationError:
        return Failure("the provider sent a message that is not JSON", None)
    kind = msg.message_type
    if kind == "session_started":
        return Started()
    if kind == "partial_transcript":
        return Partial(msg.text or "")
    if kind == "committed_transcript":
        return Committed((msg.text or "").strip(), msg.language_code)
    if msg.error is not None:
        return Failure(msg.error, kind)
    return None


def chunks(pcm: bytes) -> list[bytes]:
    """`pcm` cut into messages of at most `MAX_CHUNK_BYTES` (whole samples)."""
    return [pcm[i : i + MAX_CHUNK_BYTES] for i in range(0, len(pcm), MAX_CHUNK_BYTES)]
