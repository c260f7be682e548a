"""ElevenLabs speech: streaming text-to-speech and Scribe batch speech-to-text.

TTS: `POST {base}/v1/text-to-speech/{voice_id}/stream?output_format=…` with a JSON body streams
raw audio as it is generated. Raw HTTP rather than the SDK, so tests run
against a local emulator and a cancelled segment closes its connection at once. PCM formats
are yielded as they come; G.711 formats (`ulaw_8000`, `alaw_8000`, what telephony wants) are
decoded to PCM16 chunk by chunk.

STT: `POST {base}/v1/speech-to-text` (multipart: `model_id`, `file`, optional `language_code`)
answers `{language_code, language_probability, text, words[]}`. One segment is one request: the
PCM16 16 kHz input goes up as a WAV file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from typing import Any, Literal, Unpack
from urllib.parse import quote, urlencode

import orjson
import pydantic

from providers.speech.base import STT_SAMPLE_RATE, STTEngine, Transcript, TTSEngine
from providers.speech.http import (
    ELEVENLABS_WIRE,
    SPEECH_TO_TEXT,
    TEXT_TO_SPEECH,
    EngineArgs,
    HttpAudioEngine,
    parse_answer,
)
from providers.speech.pcm import g711_decode
from providers.upstream_pool import UpstreamClients

DEFAULT_VOICE_ID = "21m00Tcm4TlvDq8ikWAM"
"""ElevenLabs' premade "Rachel", present on every account."""

PCM_RATES = frozenset({8000, 16000, 22050, 24000, 32000, 44100, 48000})


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """What an `output_format` value streams: raw PCM16 or G.711 codes, at `sample_rate`."""

    encoding: Literal["pcm16", "ulaw", "alaw"]
    sample_rate: int


def audio_format_for(output_format: str) -> OutputFormat:
    """The audio an `output_format` value delivers; only raw PCM and G.711 can be streamed as PCM."""
    if output_format == "ulaw_8000":
        return OutputFormat("ulaw", 8000)
    if output_format == "alaw_8000":
        return OutputFormat("alaw", 8000)
    kind, _, rate = output_format.partition("_")
    if kind == "pcm" and rate.isdigit() and int(rate) in PCM_RATES:
        return OutputFormat("pcm16", int(rate))
    raise ValueError(
        f"unsupported ElevenLabs output_format {output_format!r} (use pcm_<rate>, ulaw_8000 or alaw_8000)"
    )


@dataclass(frozen=True, slots=True)
class VoiceSettings:
    stability: float | None = None
    similarity_boost: float | None = None
    style: float | None = None
    use_speaker_boost: bool | None = None
    speed: float | None = None

    def to_wire(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True, slots=True)
class ElevenLabsTTSOptions:
    voice_id: str = DEFAULT_VOICE_ID
    model_id: str = "eleven_flash_v2_5"
    output_format: str = "pcm_16000"
    voice_settings: VoiceSettings | None = None
    optimize_streaming_latency: int | None = None
    language_code: str | None = None
    chunk_length_schedule: tuple[int, ...] = (120, 160, 250, 290)
    """The `stream-input` WebSocket's generation schedule (the provider's default): it generates
    once its buffered text reaches the next step, on a `flush`, or when the input ends."""

    def __post_init__(self) -> None:
        audio_format_for(self.output_format)
        if not self.chunk_length_schedule or not all(50 <= n <= 500 for n in self.chunk_length_schedule):
            raise ValueError("chunk_length_schedule needs steps within 50..500")
        if not self.voice_id or not self.model_id:
            raise ValueError("voice_id and model_id must be non-empty")
        if self.optimize_streaming_latency is not None and not 0 <= self.optimize_streaming_latency <= 4:
            raise ValueError("optimize_streaming_latency must be within 0..4")


def tts_request_parts(
    text: str, voice_id: str, options: ElevenLabsTTSOptions
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(path, query, JSON body) of one streaming TTS request."""
    path = f"/v1/text-to-speech/{quote(voice_id, safe='')}/stream"
    query = {"output_format": options.output_format}
    if options.optimize_streaming_latency is not None:
        query["optimize_streaming_latency"] = str(options.optimize_streaming_latency)
    body: dict[str, Any] = {"text": text, "model_id": options.model_id}
    if options.voice_settings is not None:
        body["voice_settings"] = options.voice_settings.to_wire()
    if options.language_code is not None:
        body["language_code"] = options.language_code
    return path, query, body


class ElevenLabsTTS(HttpAudioEngine[ElevenLabsTTSOptions], TTSEngine):
    """Streams PCM16 mono at the rate of `options.output_format`.

    `clients` is the process's pool of upstream clients; the engine never closes it.
    """

    wire = ELEVENLABS_WIRE
    role = TEXT_TO_SPEECH
    options_type = ElevenLabsTTSOptions

    def __init__(self, clients: UpstreamClients, **engine: Unpack[EngineArgs[ElevenLabsTTSOptions]]) -> None:
        super().__init__(clients, **engine)
        self._format = audio_format_for(self.options.output_format)
        self.sample_rate = self._format.sample_rate

    async def _synthesize(self, text: str, voice: str | None) -> AsyncIterator[bytes]:
        path, query, body = tts_request_parts(text, voice or self.options.voice_id, self.options)
        async with self._post(
            f"{path}?{urlencode(query)}",
            body=orjson.dumps(body),
            content_type="application/json",
            model=self.options.model_id,
        ) as upstream:
            law = self._format.encoding
            async for chunk in upstream.chunks():
                yield chunk if law == "pcm16" else g711_decode(chunk, law)


class ScribeResponse(pydantic.BaseModel):
    """The part of Scribe's answer a transcript needs; other fields are ignored."""

    model_config = pydantic.ConfigDict(extra="ignore")

    text: str
    language_code: str | None = None
    language_probability: float | None = None


@dataclass(frozen=True, slots=True)
class ElevenLabsSTTOptions:
    model_id: str = "scribe_v1"
    tag_audio_events: bool = False
    """Off by default: an agent should not read "(laughter)" as something the caller said."""

    def __post_init__(self) -> None:
        if not self.model_id:
            raise ValueError("model_id must be non-empty")


def stt_form(options: ElevenLabsSTTOptions, language: str | None) -> dict[str, str]:
    """The multipart text fields of one Scribe request (the audio goes as `file`)."""
    form = {"model_id": options.model_id, "tag_audio_events": "true" if options.tag_audio_events else "false"}
    if language:
        form["language_code"] = language
    return form


def parse_scribe(body: bytes, *, engine: str, model: str, audio_seconds: float) -> Transcript:
    """A Scribe JSON answer as a `Transcript`; a body of another shape is a SERVER_ERROR."""
    parsed = parse_answer(
        ScribeResponse, body, "speech-to-text answer was not a transcript", engine=engine, model=model
    )
    return Transcript(
        text=parsed.text.strip(),
        audio_seconds=audio_seconds,
        engine=engine,
        model=model,
        language=parsed.language_code,
    )


class ElevenLabsSTT(HttpAudioEngine[ElevenLabsSTTOptions], STTEngine):
    wire = ELEVENLABS_WIRE
    role = SPEECH_TO_TEXT
    options_type = ElevenLabsSTTOptions

    async def _transcribe(self, pcm16_16k: bytes, language: str | None) -> Transcript:
        model = self.options.model_id
        answer = await self._upload_segment(
            "/v1/speech-to-text", stt_form(self.options, language), pcm16_16k, model=model
        )
        return parse_scribe(
            answer, engine=self.name, model=model, audio_seconds=len(pcm16_16k) / (2 * STT_SAMPLE_RATE)
        )
