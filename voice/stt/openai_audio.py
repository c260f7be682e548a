"""OpenAI-compatible speech-to-text: `POST {base}/audio/transcriptions`.

Multipart `file` (the segment as WAV) + `model` (+ `language`), `response_format: json`,
answered with `{"text": …}`. The same wire serves OpenAI itself and compatible servers
(faster-whisper-server, vLLM, LocalAI), so nothing beyond `text` is required of the answer.
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
from voice.wire_errors import STT_TIMEOUTS, multipart, open_audio_stream, openai_audio_error


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
    try:
        parsed = TranscriptionResponse.model_validate_json(body)
    except pydantic.ValidationError:
        raise ProviderError(
            ErrorClass.SERVER_ERROR, "transcription answer was not a transcript", provider=engine, model=model
        ) from None
    return Transcript(
        text=parsed.text.strip(),
        audio_seconds=audio_seconds,
        engine=engine,
        model=model,
        language=parsed.language or language,
    )


class OpenAISTT(STTEngine):
    """Any server speaking OpenAI's `/audio/transcriptions`; `base_url` ends with `/v1`."""

    def __init__(
        self,
        clients: UpstreamClients,
        *,
        base_url: str,
        credential: Credential,
        name: str = "openai:default",
        billing_source: BillingSource = BillingSource.BYOK,
        options: OpenAISTTOptions | None = None,
        timeouts: Timeouts = STT_TIMEOUTS,
    ) -> None:
        self.options = options or OpenAISTTOptions()
        self.timeouts = timeouts
        self.name = name
        self.billing_source = billing_source
        self._clients = clients
        self._base_url = base_url.rstrip("/")
        self._credential = credential

    def _headers(self, content_type: str) -> dict[str, str]:
        headers = {"content-type": content_type, "accept": "application/json"}
        add_auth_header(headers, AuthStyle.BEARER, self._credential, "stt")
        return headers

    def _error(
        self, status: int, headers: Mapping[str, str], body: bytes, secrets: tuple[str, ...]
    ) -> ProviderError:
        return openai_audio_error(status, headers, body, provider=self.name, secrets=secrets)

    async def _transcribe(self, pcm16_16k: bytes, language: str | None) -> Transcript:
        body, content_type = multipart(
            transcription_form(self.options, language),
            {"file": ("segment.wav", wav_bytes(pcm16_16k, STT_SAMPLE_RATE), "audio/wav")},
        )
        async with open_audio_stream(
            self._clients,
            f"{self._base_url}/audio/transcriptions",
            headers=self._headers(content_type),
            body=body,
            timeouts=self.timeouts,
            provider=self.name,
            on_error=self._error,
            model=self.options.model,
        ) as upstream:
            answer = b"".join([chunk async for chunk in upstream.chunks()])
        return parse_transcription(
            answer,
            engine=self.name,
            model=self.options.model,
            audio_seconds=len(pcm16_16k) / (2 * STT_SAMPLE_RATE),
            language=language,
        )
