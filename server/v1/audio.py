"""`POST /v1/audio/transcriptions` and `POST /v1/audio/speech`, OpenAI-compatible, routed.

Both use the caller's speech chains (its agent's or org's `stt` / `tts` chains, the built-in
engines last; see `routing.speech`), so they fall back and cool down exactly as a live voice
session does, and each request is one usage segment with the serving engine's billing source.

- transcriptions: multipart `file` (WAV, FLAC, Ogg, MP3: what libsndfile reads), `language`,
  `response_format` json | text | verbose_json. `model` is accepted and ignored: the route
  decides, as for chat's `default`.
- speech: JSON `{input, voice?, response_format}`. `pcm` (PCM16 mono 24 kHz) and `wav` stream
  while they are synthesised; `mp3` (the default, as on OpenAI), `opus` (Ogg) and `flac` are
  encoded by libsndfile once the speech is complete (their headers are only right at the end),
  off the event loop. `aac` is refused with 400.

Billing: each request's segment holds and settles like any other (`routing.speech`): STT for the
audio it was sent, TTS for the characters it said and the audio it made. A segment the org's
credits cannot cover is a 402 `insufficient_credits` before any engine runs. `x-patchbay-cost` is
on every response (settled before the headers go; an error's is 0 unless speech had started),
except a streamed `pcm` / `wav` speech whose charge counts the audio still to come
(docs/billing.md#how-a-request-is-charged); that one settles before its body ends.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from typing import Literal, get_args

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile

from billing.money import format_usd
from billing.turn_costs import TurnCosts
from billing.usage import SegmentStatus
from foundation.db import new_id
from providers.errors import ProviderError, Refused
from providers.speech.base import STT_SAMPLE_RATE, TTSEngine, aclose_quietly
from providers.speech.pcm import AudioFormatError
from routing.routed_engines import RoutedTTS
from server.accounts import Principal
from server.activity.recorder import note_error, note_request, note_speech
from server.errors import with_request_id
from server.services import Services
from server.v1.asgi import admit
from server.v1.errors import ApiError
from voice.audio import FileFormat, can_encode, encode_file, read_wav, resample
from voice.turn import SessionContext, TtsTally, TurnAccounts

router = APIRouter()
MAX_AUDIO_BYTES = 25 * 1024 * 1024
"""OpenAI's limit for an uploaded file."""
MAX_INPUT_CHARS = 4096
STREAMED: dict[str, str] = {"pcm": "audio/pcm", "wav": "audio/wav"}
ENCODED: dict[FileFormat, str] = {"mp3": "audio/mpeg", "opus": "audio/ogg", "flac": "audio/flac"}


class SpeechBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    input: str = Field(min_length=1, max_length=MAX_INPUT_CHARS)
    model: str | None = None
    voice: str | None = Field(default=None, max_length=200)
    response_format: Literal["pcm", "wav", "mp3", "opus", "aac", "flac"] = "mp3"


def _error(error: ApiError, charged: str = format_usd(0)) -> JSONResponse:
    note_error(error.code or error.type)
    return JSONResponse(
        {
            "error": with_request_id(
                {"message": error.message, "type": error.type, "param": error.param, "code": error.code}
            )
        },
        status_code=error.status,
        headers={**error.headers(), "x-patchbay-cost": charged},
    )


def _invalid(message: str, param: str | None = None, code: str = "invalid_value") -> JSONResponse:
    return _error(ApiError(400, "invalid_request_error", message, code=code, param=param))


def _unavailable(stage: str, exc: ProviderError, charged: str = format_usd(0)) -> JSONResponse:
    if isinstance(exc, Refused):  # not run at all: the org's credits (402)
        return _error(ApiError(exc.status or 400, exc.error_type, exc.message, code=exc.code))
    return _error(
        ApiError(
            502, "server_error", f"{stage} failed ({exc.error_class.value})", code=f"{stage}_unavailable"
        ),
        charged,
    )


async def _caller(request: Request) -> tuple[Services, Principal] | JSONResponse:
    services: Services = request.app.state.services
    admitted = await admit(services.gateway, request.scope)
    if isinstance(admitted, ApiError):
        return _error(admitted)
    return services, admitted


def _accounts(services: Services, principal: Principal, intent: str) -> TurnAccounts:
    context = SessionContext(
        org_id=principal.org_id,
        session_id=new_id("req"),
        agent_id=principal.agent_id,
        api_key_id=principal.key_id,
    )
    return TurnAccounts(context, services.usage, intent=intent)


def _as_stt_audio(data: bytes) -> bytes:
    pcm, rate = read_wav(data)
    return resample(pcm, rate, STT_SAMPLE_RATE)


@router.post("/v1/audio/transcriptions")
async def transcriptions(request: Request) -> Response:
    caller = await _caller(request)
    if isinstance(caller, JSONResponse):
        return caller
    services, principal = caller
    async with request.form(max_files=1, max_fields=20) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return _invalid("`file` is required", "file")
        data = await upload.read(MAX_AUDIO_BYTES + 1)
        language = form.get("language")
        response_format = form.get("response_format") or "json"
        model = form.get("model")
    note_request(model if isinstance(model, str) else None)
    if len(data) > MAX_AUDIO_BYTES:
        return _invalid("the file is larger than 25 MB", "file", "file_too_large")
    try:
        # Decoding and resampling 25 MB of audio takes long enough to stall every other
        # tenant's requests on this loop; both run on a worker thread.
        pcm = await asyncio.to_thread(_as_stt_audio, data)
    except AudioFormatError:
        return _invalid(
            "the file is not audio this server can read (WAV, FLAC, Ogg or MP3)",
            "file",
            "invalid_audio_format",
        )
    if response_format not in ("json", "text", "verbose_json"):
        return _invalid("response_format must be json, text or verbose_json", "response_format")
    costs = TurnCosts()
    stt, _ = await services.voice.engines_for(principal, costs=costs)
    try:
        transcript = await stt.transcribe(
            pcm,
            language=language if isinstance(language, str) and language else None,
        )
    except ProviderError as exc:
        note_speech(getattr(stt, "last_trace", None))
        return _unavailable("stt", exc)
    note_speech(getattr(stt, "last_trace", None), response=transcript.text)
    if not stt.records_usage:
        _accounts(services, principal, "stt").stt(
            None,
            transcript.engine,
            stt.billing_source,
            transcript.audio_seconds,
            model=transcript.model,
            latency_ms=None,
        )
    headers = {"x-patchbay-provider": transcript.engine, "x-patchbay-cost": _cost(costs)}
    if response_format == "text":
        return PlainTextResponse(transcript.text, headers=headers)
    body: dict[str, object] = {"text": transcript.text}
    if response_format == "verbose_json":
        body.update(
            task="transcribe", language=transcript.language, duration=round(transcript.audio_seconds, 3)
        )
    return JSONResponse(body, headers=headers)


def wav_stream_header(rate: int) -> bytes:
    """A PCM16 mono WAV header with unknown sizes (0xFFFFFFFF), as streaming servers write it."""
    unknown = 0xFFFFFFFF
    return (
        b"RIFF" + struct.pack("<I", unknown) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data" + struct.pack("<I", unknown)
    )  # fmt: skip


@router.post("/v1/audio/speech")
async def speech(request: Request) -> Response:
    caller = await _caller(request)
    if isinstance(caller, JSONResponse):
        return caller
    services, principal = caller
    try:
        body = SpeechBody.model_validate_json(await request.body())
    except ValidationError as exc:
        problem = exc.errors(include_url=False, include_input=False)[0]
        param = ".".join(str(p) for p in problem["loc"])
        return _invalid(f"{param}: {problem['msg']}", param or None)
    note_request(body.model)
    fmt = body.response_format
    encoded_as = _encodable(fmt)
    if fmt not in STREAMED and encoded_as is None:
        supported = ", ".join([*STREAMED, *(f for f in get_args(FileFormat) if can_encode(f))])
        return _invalid(
            f"response_format must be one of {supported} on this server",
            "response_format",
            "unsupported_format",
        )
    costs = TurnCosts()
    _, tts = await services.voice.engines_for(principal, costs=costs)
    stream = tts.synthesize(body.input, voice=body.voice)
    try:
        first = await anext(stream)
    except StopAsyncIteration:
        first = b""
    except ProviderError as exc:
        await aclose_quietly(stream)
        note_speech(getattr(tts, "last_trace", None), prompt=body.input)
        return _unavailable("tts", exc)
    # The segment's trace goes on filling in; it is read when the log row is written.
    note_speech(getattr(tts, "last_trace", None), prompt=body.input)
    served = getattr(tts, "last_served", None) or tts
    speech = _Speech(stream, first, body.input, tts, served, _accounts(services, principal, "tts"))
    headers = {"x-patchbay-provider": served.name, "x-patchbay-sample-rate": str(tts.sample_rate)}
    if encoded_as is None:
        charge = await _charge_before_audio(tts, body.input, first, costs)
        if charge is not None:
            headers["x-patchbay-cost"] = charge
        head = wav_stream_header(tts.sample_rate) if fmt == "wav" else b""
        return StreamingResponse(_cut_short(speech.chunks(head)), media_type=STREAMED[fmt], headers=headers)
    try:
        pcm = b"".join([chunk async for chunk in speech.chunks()])
    except ProviderError as exc:  # midway: the speech made so far was charged
        return _unavailable("tts", exc, _cost(costs))
    encoded = await asyncio.to_thread(encode_file, pcm, tts.sample_rate, encoded_as)
    # The whole speech was made (and its segment settled) before these headers: it carries its cost.
    return Response(
        encoded, media_type=ENCODED[encoded_as], headers={**headers, "x-patchbay-cost": _cost(costs)}
    )


def _cost(costs: TurnCosts) -> str:
    """What the request's segment was charged (settled by now), as `x-patchbay-cost` writes it."""
    return format_usd(sum((costs.take(None) or {}).values()))


async def _charge_before_audio(tts: TTSEngine, text: str, first: bytes, costs: TurnCosts) -> str | None:
    """A streamed speech's charge when its headers go, if known by then (nothing spoken, or no audio counts)."""
    if not first:
        return _cost(costs)
    if not isinstance(tts, RoutedTTS):
        return None
    charge = await tts.charge_before_audio(text)
    return None if charge is None else format_usd(charge)


def _encodable(fmt: str) -> FileFormat | None:
    """`fmt` as a file format this server encodes, or None (streamed, or not available)."""
    return next((f for f in get_args(FileFormat) if f == fmt and can_encode(f)), None)


async def _cut_short(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """A streamed body whose synthesis fails midway just ends: its status line is gone."""
    try:
        async for chunk in chunks:
            yield chunk
    except ProviderError as exc:
        note_error("tts_unavailable", after_output=True, error_class=exc.error_class.value)


class _Speech:
    """One synthesis: its chunks (the first already read) and its usage record when it ends."""

    def __init__(
        self,
        stream: AsyncIterator[bytes],
        first: bytes,
        text: str,
        tts: TTSEngine,
        served: TTSEngine,
        accounts: TurnAccounts,
    ) -> None:
        self._stream, self._first, self._text = stream, first, text
        self._tts, self._served, self._accounts = tts, served, accounts

    async def chunks(self, head: bytes = b"") -> AsyncIterator[bytes]:
        """`head`, then the audio. A failure after the first chunk raises here (a streamed
        response is cut short: its headers are gone) and is recorded as a failed segment."""
        produced = len(self._first)
        status = SegmentStatus.CANCELLED
        try:
            if head or self._first:
                yield head + self._first
            async for chunk in self._stream:
                produced += len(chunk)
                yield chunk
            status = SegmentStatus.OK
        except ProviderError:
            status = SegmentStatus.FAILED
            raise
        finally:
            await aclose_quietly(self._stream)
            if not self._tts.records_usage:
                tally = TtsTally()
                tts, served = self._tts, self._served
                tally.add(
                    served.name, served.billing_source, len(self._text), produced / (2 * tts.sample_rate)
                )
                self._accounts.tts(None, tally, latency_ms=None, status=status)
