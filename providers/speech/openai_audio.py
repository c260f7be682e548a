"""OpenAI-compatible speech: `POST {base}/audio/speech` and `POST {base}/audio/transcriptions`.

The same wire serves OpenAI itself and compatible servers (faster-whisper-server, vLLM,
LocalAI, Kokoro), with bearer auth and OpenAI's error bodies; `base_url` ends with `/v1` as
for chat.

TTS: body `{model, input, voice, response_format}`; with `response_format: "pcm"` the answer is
raw PCM16 24 kHz mono streamed as it is generated. Some compatible servers only stream `wav`,
so that is accepted too: a streaming WAV header parser finds the PCM and its rate, and audio
at another rate is resampled to the engine's `sample_rate`.

STT: multipart `file` (the segment as WAV) + `model` (+ `language`), `response_format: json`,
answered with `{"text": …}`; nothing beyond `text` is required of the answer.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Unpack

import numpy as np
import orjson
import pydantic

from providers.contract import ErrorClass
from providers.errors import ProviderError
from providers.speech.base import STT_SAMPLE_RATE, STTEngine, Transcript, TTSEngine
from providers.speech.http import (
    OPENAI_AUDIO_WIRE,
    SPEECH_TO_TEXT,
    TEXT_TO_SPEECH,
    EngineArgs,
    HttpAudioEngine,
    parse_answer,
)
from providers.speech.pcm import Resampler
from providers.upstream_pool import UpstreamClients

OPENAI_PCM_RATE = 24_000


class WavStreamError(ValueError):
    """A streamed WAV that is not 16-bit PCM, or not WAV at all."""


class WavStreamParser:
    """Strip a WAV header from a byte stream, chunk by chunk.

    `feed` returns the PCM bytes that follow the `data` chunk header (empty until the header
    has been seen). Streaming servers write a placeholder `data` size (0xFFFFFFFF or 0), so
    the size is ignored and everything after the header is audio. Stereo is mixed to mono
    by `to_mono`, left to the caller because a frame may straddle two chunks.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._in_data = False
        self.sample_rate: int | None = None
        self.channels: int | None = None

    @property
    def header_done(self) -> bool:
        return self._in_data

    def feed(self, chunk: bytes) -> bytes:
        if self._in_data:
            return chunk
        self._buffer += chunk
        if len(self._buffer) < 12:
            return b""
        if self._buffer[:4] != b"RIFF" or self._buffer[8:12] != b"WAVE":
            raise WavStreamError("audio stream is not a WAV file")
        offset = 12
        while len(self._buffer) >= offset + 8:
            chunk_id, size = struct.unpack_from("<4sI", self._buffer, offset)
            body = offset + 8
            if chunk_id == b"data":
                if self.sample_rate is None:
                    raise WavStreamError("WAV data arrived before its format")
                self._in_data = True
                rest, self._buffer = self._buffer[body:], b""
                return rest
            if len(self._buffer) < body + size:
                return b""
            if chunk_id == b"fmt ":
                self._read_format(self._buffer[body : body + size])
            offset = body + size + (size & 1)
        return b""

    def _read_format(self, fmt: bytes) -> None:
        if len(fmt) < 16:
            raise WavStreamError("WAV format chunk is truncated")
        tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", fmt)
        # 0xFFFE is WAVE_FORMAT_EXTENSIBLE, which servers use for plain PCM too.
        if tag not in (1, 0xFFFE) or bits != 16 or channels not in (1, 2):
            raise WavStreamError(f"WAV is not 16-bit mono/stereo PCM (tag {tag}, {bits} bit, {channels} ch)")
        self.sample_rate, self.channels = rate, channels


@dataclass(frozen=True, slots=True)
class OpenAITTSOptions:
    model: str = "gpt-4o-mini-tts"
    voice: str = "alloy"
    response_format: Literal["pcm", "wav"] = "pcm"
    speed: float | None = None
    instructions: str | None = None
    sample_rate: int = OPENAI_PCM_RATE
    """The rate this engine yields; `pcm` input is OpenAI's 24 kHz, resampled if this differs."""

    def __post_init__(self) -> None:
        if self.response_format not in ("pcm", "wav"):
            raise ValueError("response_format must be 'pcm' or 'wav' to stream PCM")
        if not self.model or not self.voice:
            raise ValueError("model and voice must be non-empty")
        if self.sample_rate <= 0:
            raise ValueError("sample_rate must be positive")


def speech_body(text: str, voice: str, options: OpenAITTSOptions) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": options.model,
        "input": text,
        "voice": voice,
        "response_format": options.response_format,
    }
    if options.speed is not None:
        body["speed"] = options.speed
    if options.instructions is not None:
        body["instructions"] = options.instructions
    return body


def stereo_to_mono(pcm: bytes) -> bytes:
    """Average interleaved 16-bit stereo frames (a whole number of 4-byte frames)."""
    frames = np.frombuffer(pcm, dtype="<i2").reshape(-1, 2).astype(np.int32)
    mono: bytes = (frames.sum(axis=1) // 2).astype("<i2").tobytes()
    return mono


class OpenAITTS(HttpAudioEngine[OpenAITTSOptions], TTSEngine):
    """Any server speaking OpenAI's `/audio/speech`; `base_url` ends with `/v1` as for chat."""

    wire = OPENAI_AUDIO_WIRE
    role = TEXT_TO_SPEECH
    options_type = OpenAITTSOptions

    def __init__(self, clients: UpstreamClients, **engine: Unpack[EngineArgs[OpenAITTSOptions]]) -> None:
        super().__init__(clients, **engine)
        self.sample_rate = self.options.sample_rate

    async def _synthesize(self, text: str, voice: str | None) -> AsyncIterator[bytes]:
        async with self._post(
            "/audio/speech",
            body=orjson.dumps(speech_body(text, voice or self.options.voice, self.options)),
            content_type="application/json",
            model=self.options.model,
        ) as upstream:
            chunks = upstream.chunks()
            if self.options.response_format == "pcm":
                resampler = Resampler(OPENAI_PCM_RATE, self.sample_rate)
                async for chunk in chunks:
                    yield resampler.process(chunk)
                yield resampler.flush()
                return
            async for pcm in self._wav_pcm(chunks):
                yield pcm

    async def _wav_pcm(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        parser = WavStreamParser()
        resampler: Resampler | None = None
        pending = b""
        async for chunk in chunks:
            try:
                data = parser.feed(chunk)
            except WavStreamError as exc:
                raise ProviderError(ErrorClass.SERVER_ERROR, str(exc), provider=self.name) from None
            if not data:
                continue
            assert parser.sample_rate is not None and parser.channels is not None
            if resampler is None:
                resampler = Resampler(parser.sample_rate, self.sample_rate)
            if parser.channels == 2:
                data = pending + data
                whole = len(data) - len(data) % 4
                data, pending = stereo_to_mono(data[:whole]), data[whole:]
            yield resampler.process(data)
        if not parser.header_done:
            raise ProviderError(
                ErrorClass.SERVER_ERROR, "speech stream ended before any audio", provider=self.name
            )
        if resampler is not None:
            yield resampler.flush()


class TranscriptionResponse(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore")

    text: str
    language: str | None = None
    """Only in `verbose_json` answers; kept when a compatible server sends it anyway."""


@dataclass(frozen=True, slots=True)
class OpenAISTTOptions:
    model: str = "whisper-1"
    prompt: str | None = None

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("model must be non-empty")


def transcription_form(options: OpenAISTTOptions, language: str | None) -> dict[str, str]:
    form = {"model": options.model, "response_format": "json"}
    if language:
        form["language"] = language
    if options.prompt:
        form["prompt"] = options.prompt
    return form


def parse_transcription(
    body: bytes, *, engine: str, model: str, audio_seconds: float, language: str | None
) -> Transcript:
    parsed = parse_answer(
        TranscriptionResponse, body, "transcription answer was not a transcript", engine=engine, model=model
    )
    return Transcript(
        text=parsed.text.strip(),
        audio_seconds=audio_seconds,
        engine=engine,
        model=model,
        language=parsed.language or language,
    )


class OpenAISTT(HttpAudioEngine[OpenAISTTOptions], STTEngine):
    """Any server speaking OpenAI's `/audio/transcriptions`; `base_url` ends with `/v1`."""

    wire = OPENAI_AUDIO_WIRE
    role = SPEECH_TO_TEXT
    options_type = OpenAISTTOptions

    async def _transcribe(self, pcm16_16k: bytes, language: str | None) -> Transcript:
        model = self.options.model
        answer = await self._upload_segment(
            "/audio/transcriptions", transcription_form(self.options, language), pcm16_16k, model=model
        )
        return parse_transcription(
            answer,
            engine=self.name,
            model=model,
            audio_seconds=len(pcm16_16k) / (2 * STT_SAMPLE_RATE),
            language=language,
        )
