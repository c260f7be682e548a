"""OpenAI-compatible speech-to-text: `POST {base}/audio/transcriptions`.

Multipart `file` (the segment as WAV) + `model` (+ `language`), `response_format: json`,
answered with `{"text": …}`. The same wire serves OpenAI itself and compatible servers
(faster-whisper-server, vLLM, LocalAI), so nothing beyond `text` is required of the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import pydantic

from providers.speech.base import STT_SAMPLE_RATE, STTEngine, Transcript
from voice.http_engine import OPENAI_AUDIO_WIRE, SPEECH_TO_TEXT, HttpAudioEngine, parse_answer


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
