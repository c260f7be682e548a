"""The shell shared by the cloud (HTTP) speech engines.

A cloud STT or TTS engine is the same few things around a different wire: the process's pooled
upstream clients, a base URL, a credential sent in the provider's auth style, and the
provider's error dialect. `HttpAudioEngine` owns them, the constructor every cloud engine
shares, and `_post`, which sends one request and yields the 2xx stream through
`providers.speech.errors.open_audio_stream` (errors mapped and scrubbed, the connection closed when
the caller leaves early or is cancelled). A provider module adds only its options, the shape of
its request and how it reads the answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import ClassVar, Generic, NotRequired, Protocol, TypedDict, TypeVar

import pydantic

from providers.auth import add_auth_header
from providers.contract import AuthStyle, BillingSource, ErrorClass
from providers.credentials import Credential
from providers.errors import ProviderError
from providers.http import Timeouts, UpstreamStream
from providers.speech.base import STT_SAMPLE_RATE
from providers.speech.errors import (
    STT_TIMEOUTS,
    TTS_TIMEOUTS,
    elevenlabs_error,
    multipart,
    open_audio_stream,
    openai_audio_error,
)
from providers.speech.pcm import wav_bytes
from providers.upstream_pool import UpstreamClients

OptionsT = TypeVar("OptionsT")
AnswerT = TypeVar("AnswerT", bound=pydantic.BaseModel)


class ErrorDialect(Protocol):
    def __call__(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        *,
        provider: str,
        secrets: Iterable[str] = (),
    ) -> ProviderError: ...


@dataclass(frozen=True, slots=True)
class AudioWire:
    """What a provider's audio endpoints share: how the key is sent and how errors read."""

    auth_style: AuthStyle
    error: ErrorDialect
    default_name: str


ELEVENLABS_WIRE = AudioWire(AuthStyle.XI_API_KEY, elevenlabs_error, "elevenlabs:default")
OPENAI_AUDIO_WIRE = AudioWire(AuthStyle.BEARER, openai_audio_error, "openai:default")


@dataclass(frozen=True, slots=True)
class AudioRole:
    """What differs between recognising and speaking over HTTP."""

    purpose: str
    """Named when the credential is revealed, so the audit log tells STT from TTS use."""
    accept: str
    default_timeouts: Timeouts


SPEECH_TO_TEXT = AudioRole("stt", "application/json", STT_TIMEOUTS)
TEXT_TO_SPEECH = AudioRole("tts", "audio/*", TTS_TIMEOUTS)


class EngineArgs(TypedDict, Generic[OptionsT]):
    """The keyword arguments of `HttpAudioEngine`, for a subclass that extends `__init__`."""

    base_url: str
    credential: Credential
    name: NotRequired[str | None]
    billing_source: NotRequired[BillingSource]
    options: NotRequired[OptionsT | None]
    timeouts: NotRequired[Timeouts | None]


class HttpAudioEngine(Generic[OptionsT]):
    """Mixin for a cloud engine; list it before `STTEngine`/`TTSEngine` in the bases.

    A subclass sets `wire`, `role` and `options_type` (built with no arguments when no
    options are given). `clients` belongs to the caller; the engine never closes it.
    """

    wire: ClassVar[AudioWire]
    role: ClassVar[AudioRole]
    options_type: type[OptionsT]

    name: str
    billing_source: BillingSource

    def __init__(
        self,
        clients: UpstreamClients,
        *,
        base_url: str,
        credential: Credential,
        name: str | None = None,
        billing_source: BillingSource = BillingSource.BYOK,
        options: OptionsT | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.options: OptionsT = options if options is not None else self.options_type()
        self.timeouts = timeouts if timeouts is not None else self.role.default_timeouts
        self.name = name if name is not None else self.wire.default_name
        self.billing_source = billing_source
        self._clients = clients
        self._base_url = base_url.rstrip("/")
        self._credential = credential

    def _post(
        self, path: str, *, body: bytes, content_type: str, model: str
    ) -> AbstractAsyncContextManager[UpstreamStream]:
        """POST `body` to `base_url + path`; entering yields the 2xx stream or raises the mapped error."""
        headers = {"content-type": content_type, "accept": self.role.accept}
        add_auth_header(headers, self.wire.auth_style, self._credential, self.role.purpose)
        return open_audio_stream(
            self._clients,
            f"{self._base_url}{path}",
            headers=headers,
            body=body,
            timeouts=self.timeouts,
            provider=self.name,
            on_error=self._error,
            model=model,
        )

    async def _upload_segment(
        self, path: str, form: Mapping[str, str], pcm16_16k: bytes, *, model: str
    ) -> bytes:
        """Upload one PCM16 16 kHz segment as `file` (a WAV) with `form`; the whole answer body."""
        body, content_type = multipart(
            form, {"file": ("segment.wav", wav_bytes(pcm16_16k, STT_SAMPLE_RATE), "audio/wav")}
        )
        async with self._post(path, body=body, content_type=content_type, model=model) as upstream:
            return await upstream.read()

    def _error(
        self, status: int, headers: Mapping[str, str], body: bytes, secrets: tuple[str, ...]
    ) -> ProviderError:
        return self.wire.error(status, headers, body, provider=self.name, secrets=secrets)


def parse_answer(schema: type[AnswerT], body: bytes, message: str, *, engine: str, model: str) -> AnswerT:
    """`body` (JSON) as `schema`; a body of another shape is a SERVER_ERROR saying `message`."""
    try:
        return schema.model_validate_json(body)
    except pydantic.ValidationError:
        raise ProviderError(ErrorClass.SERVER_ERROR, message, provider=engine, model=model) from None
