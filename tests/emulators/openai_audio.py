"""A local emulator of OpenAI's audio endpoints (and of compatible servers that copy them).

Routes under `/v1`: `POST /audio/speech` (JSON body; `pcm` streams raw PCM16 24 kHz mono,
`wav` streams a WAV whose sizes are the 0xFFFFFFFF streaming placeholder), `POST
/audio/transcriptions` (multipart; `json`, `text` or `verbose_json`), `GET /models`. Errors
use OpenAI's `{"error": {message, type, param, code}}` body with `x-request-id` and the rate
headers. Scripted per test through `recorder` exactly like the ElevenLabs emulator.
"""

from __future__ import annotations

import io
import json
import struct
import uuid
from collections.abc import Mapping
from typing import Any

import soundfile
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.emulators.playback import silence_dropped_connection_logs
from tests.emulators.scripted import (
    Recorder,
    Scenario,
    ScriptedStream,
    split,
    tone_pcm16,
)

PCM_RATE = 24_000
SPEECH_FORMATS = {"mp3", "opus", "aac", "flac", "wav", "pcm"}
DEFAULT_TRANSCRIPT = "hello from the openai emulator"


def _error(
    status: int,
    message: str,
    kind: str,
    code: str | None,
    headers: Mapping[str, str] | None = None,
    param: str | None = None,
) -> Scenario:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return Scenario(
        status=status,
        body=json.dumps(body).encode(),
        headers={
            "content-type": "application/json",
            "x-request-id": f"req_{uuid.uuid4().hex}",
            **(headers or {}),
        },
    )


def invalid_api_key(shown: str = "sk-test-****") -> Scenario:
    return _error(
        401,
        f"Incorrect API key provided: {shown}. You can find your API key at https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        "invalid_api_key",
    )


def insufficient_quota() -> Scenario:
    return _error(
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        "insufficient_quota",
        "insufficient_quota",
    )


def rate_limited(retry_after: float = 1.0) -> Scenario:
    headers = {
        "retry-after": str(retry_after),
        "x-ratelimit-limit-requests": "50",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": f"{retry_after}s",
    }
    return _error(429, "Rate limit reached for requests.", "requests", "rate_limit_exceeded", headers)


def model_not_found(model: str = "tts-9") -> Scenario:
    return _error(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    )


def bad_request(param: str = "voice") -> Scenario:
    return _error(400, f"Invalid value for '{param}'.", "invalid_request_error", "invalid_value", param=param)


def server_error() -> Scenario:
    return _error(500, "The server had an error while processing your request.", "server_error", None)


def overloaded() -> Scenario:
    return _error(
        503, "The engine is currently overloaded, please try again later.", "server_error", "slow_down"
    )


def streaming_wav_header(rate: int, channels: int = 1) -> bytes:
    """A WAV header with the 0xFFFFFFFF size placeholders streaming servers write."""
    block = 2 * channels
    return (
        b"RIFF"
        + struct.pack("<I", 0xFFFFFFFF)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, 16)
        + b"data"
        + struct.pack("<I", 0xFFFFFFFF)
    )


class OpenAIAudioEmulator:
    def __init__(
        self,
        *,
        valid_keys: set[str] | None = None,
        tone_seconds: float = 0.5,
        wav_rate: int = PCM_RATE,
        wav_channels: int = 1,
    ) -> None:
        self.recorder = Recorder()
        self.valid_keys = valid_keys
        self.tone_seconds = tone_seconds
        self.wav_rate = wav_rate
        self.wav_channels = wav_channels
        silence_dropped_connection_logs()
        self.app = Starlette(
            routes=[
                Route("/v1/audio/speech", self.speech, methods=["POST"]),
                Route("/v1/audio/transcriptions", self.transcriptions, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
            ]
        )

    def _auth_failure(self, request: Request) -> Response | None:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:]:
            return _as_response(_error(401, "You didn't provide an API key.", "invalid_request_error", None))
        if self.valid_keys is not None and auth[7:] not in self.valid_keys:
            return _as_response(invalid_api_key())
        return None

    async def speech(self, request: Request) -> Response:
        body = await self.recorder.record_json(request)
        if (failure := self._auth_failure(request)) is not None:
            return failure
        scenario = self.recorder.next_scenario()
        if scenario.status != 200:
            return _as_response(scenario)
        if (problem := _speech_body_problem(body)) is not None:
            return _as_response(bad_request(problem))
        assert isinstance(body, dict)
        fmt = body.get("response_format", "mp3")
        headers = {"x-request-id": f"req_{uuid.uuid4().hex}", "openai-processing-ms": "42"}
        if fmt == "pcm":
            audio = tone_pcm16(PCM_RATE, seconds=self.tone_seconds).astype("<i2").tobytes()
            pieces = split(audio, scenario.chunks)
            return ScriptedStream(pieces, scenario, self.recorder, media_type="audio/pcm", headers=headers)
        if fmt == "wav":
            mono = tone_pcm16(self.wav_rate, seconds=self.tone_seconds)
            frames = mono if self.wav_channels == 1 else mono.repeat(self.wav_channels)
            audio = frames.astype("<i2").tobytes()
            # The header arrives split, as a network may deliver it.
            header = streaming_wav_header(self.wav_rate, self.wav_channels)
            pieces = [header[:20], header[20:] + audio[:100], *split(audio[100:], scenario.chunks)]
            return ScriptedStream(pieces, scenario, self.recorder, media_type="audio/wav", headers=headers)
        return _as_response(bad_request("response_format"))

    async def transcriptions(self, request: Request) -> Response:
        fields, files = await self.recorder.record_upload(request)
        if (failure := self._auth_failure(request)) is not None:
            return failure
        scenario = self.recorder.next_scenario()
        if scenario.status != 200:
            return _as_response(scenario)
        if not fields.get("model"):
            return _as_response(bad_request("model"))
        if "file" not in files:
            return _as_response(bad_request("file"))
        try:
            samples, rate = soundfile.read(io.BytesIO(files["file"]), dtype="int16")
        except (soundfile.LibsndfileError, RuntimeError, TypeError):
            return _as_response(
                _error(
                    400,
                    "The audio file could not be decoded or its format is not supported.",
                    "invalid_request_error",
                    None,
                    param="file",
                )
            )
        text = scenario.transcript if scenario.transcript is not None else DEFAULT_TRANSCRIPT
        duration = len(samples) / rate
        fmt = fields.get("response_format", "json")
        headers = {"x-request-id": f"req_{uuid.uuid4().hex}"}
        if fmt == "text":
            return PlainTextResponse(text + "\n", headers=headers)
        payload: dict[str, Any] = {"text": text, "usage": {"type": "duration", "seconds": round(duration)}}
        if fmt == "verbose_json":
            payload = {
                "task": "transcribe",
                "language": "english",
                "duration": duration,
                "text": text,
                "segments": [],
            }
        elif fmt != "json":
            return _as_response(bad_request("response_format"))
        return ScriptedStream(
            [json.dumps(payload).encode()],
            scenario,
            self.recorder,
            media_type="application/json",
            headers=headers,
        )

    async def models(self, request: Request) -> Response:
        self.recorder.record_request(request)
        if (failure := self._auth_failure(request)) is not None:
            return failure
        data = [
            {"id": model, "object": "model", "created": 1700000000, "owned_by": "system"}
            for model in ("whisper-1", "gpt-4o-mini-transcribe", "gpt-4o-mini-tts", "tts-1")
        ]
        return JSONResponse({"object": "list", "data": data})


def _as_response(scenario: Scenario) -> Response:
    return Response(scenario.body, status_code=scenario.status, headers=dict(scenario.headers))


def _speech_body_problem(body: object) -> str | None:
    """The name of the first invalid parameter of a speech request, else None."""
    if not isinstance(body, dict):
        return "body"
    for required in ("model", "input", "voice"):
        if not body.get(required):
            return required
    if not isinstance(body["input"], str) or len(body["input"]) > 4096:
        return "input"
    if body.get("response_format", "mp3") not in SPEECH_FORMATS:
        return "response_format"
    speed = body.get("speed")
    if speed is not None and not (isinstance(speed, int | float) and 0.25 <= speed <= 4.0):
        return "speed"
    return None
