"""ElevenLabs Scribe batch speech-to-text.

`POST {base}/v1/speech-to-text` (multipart: `model_id`, `file`, optional `language_code`)
answers `{language_code, language_probability, text, words[]}`. One
segment is one request: the PCM16 16 kHz input goes up as a WAV file.
"""

from __future__ import annotations

from dataclasses import dataclass

import pydantic

from voice.http_engine import ELEVENLABS_WIRE, SPEECH_TO_TEXT, HttpAudioEngine, parse_answer
from voice.stt.base import STT_SAMPLE_RATE, STTEngine, Transcript


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
