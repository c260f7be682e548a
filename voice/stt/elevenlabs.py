"""ElevenLabs Scribe batch speech-to-text.

`POST {base}/v1/speech-to-text` (multipart: `model_id`, `file`, optional `language_code`)
answers `{language_code, language_probability, text, words[]}` (voice.md section 6). One
segment is one request: the PCM16 16 kHz input goes up as a WAV file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pydantic

from providers.auth import add_auth_header
from providers.contract import AuthStyle, BillingSource, ErrorClass
from providers.credentials import Credential
from providers.errors import ProviderError
from providers.http import Timeouts, UpstreamClients
from voice.audio import wav_bytes
from voice.stt.base import STT_SAMPLE_RATE, STTEngine, Transcript
from voice.wire_errors import STT_TIMEOUTS, elevenlabs_error, multipart, open_audio_stream


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
    try:
        parsed = ScribeResponse.model_validate_json(body)
    except pydantic.ValidationError:
        raise ProviderError(
            ErrorClass.SERVER_ERROR,
            "speech-to-text answer was not a transcript",
            provider=engine,
            model=model,
        ) from None
    return Transcript(
        text=parsed.text.strip(),
        audio_seconds=audio_seconds,
        engine=engine,
        model=model,
        language=parsed.language_code,
    )


class ElevenLabsSTT(STTEngine):
    def __init__(
        self,
        clients: UpstreamClients,
        *,
        base_url: str,
        credential: Credential,
        name: str = "elevenlabs:default",
        billing_source: BillingSource = BillingSource.BYOK,
        options: ElevenLabsSTTOptions | None = None,
        timeouts: Timeouts = STT_TIMEOUTS,
    ) -> None:
        self.options = options or ElevenLabsSTTOptions()
        self.timeouts = timeouts
        self.name = name
        self.billing_source = billing_source
        self._clients = clients
        self._base_url = base_url.rstrip("/")
        self._credential = credential

    def _headers(self, content_type: str) -> dict[str, str]:
        headers = {"content-type": content_type, "accept": "application/json"}
        add_auth_header(headers, AuthStyle.XI_API_KEY, self._credential, "stt")
        return headers

    def _error(
        self, status: int, headers: Mapping[str, str], body: bytes, secrets: tuple[str, ...]
    ) -> ProviderError:
        return elevenlabs_error(status, headers, body, provider=self.name, secrets=secrets)

    async def _transcribe(self, pcm16_16k: bytes, language: str | None) -> Transcript:
        body, content_type = multipart(
            stt_form(self.options, language),
            {"file": ("segment.wav", wav_bytes(pcm16_16k, STT_SAMPLE_RATE), "audio/wav")},
        )
        async with open_audio_stream(
            self._clients,
            f"{self._base_url}/v1/speech-to-text",
            headers=self._headers(content_type),
            body=body,
            timeouts=self.timeouts,
            provider=self.name,
            on_error=self._error,
            model=self.options.model_id,
        ) as upstream:
            answer = b"".join([chunk async for chunk in upstream.chunks()])
        return parse_scribe(
            answer,
            engine=self.name,
            model=self.options.model_id,
            audio_seconds=len(pcm16_16k) / (2 * STT_SAMPLE_RATE),
        )
