"""A local emulator of the ElevenLabs REST API surface Patchbay uses.

Routes: `POST /v1/text-to-speech/{voice_id}[/stream]` (chunked raw audio at the requested
`output_format`: pcm_*, ulaw_8000, alaw_8000), the `stream-input` WebSocket
(tests/emulators/elevenlabs_ws.py), the realtime STT WebSocket
(tests/emulators/elevenlabs_stt_ws.py), `POST /v1/speech-to-text` (Scribe batch,
multipart), `GET /v1/user`, `GET /v1/models`, `GET /v1/voices`. Bodies are checked against
what the official SDK can send; errors use ElevenLabs' `{"detail": {"status", "message"}}`
shape, with the concurrency headers the real API returns.

    emu = ElevenLabsEmulator()
    emu.recorder.script(emu_errors.quota_exceeded(), ok(chunks=6))
    with ServedApp(emu.app) as served: ...
"""

from __future__ import annotations

import inspect
import io
import json
import uuid
from collections.abc import Mapping
from typing import Any

import pydantic
import soundfile
from elevenlabs.text_to_speech.raw_client import AsyncRawTextToSpeechClient
from elevenlabs.types import VoiceSettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from tests.emulators.elevenlabs_stt_ws import RealtimeSTTEmulator
from tests.emulators.elevenlabs_ws import StreamInputEmulator
from tests.emulators.playback import silence_dropped_connection_logs
from tests.emulators.scripted import (
    Recorder,
    Scenario,
    ScriptedStream,
    alaw_encode,
    split,
    tone_pcm16,
    ulaw_encode,
)

MAX_CONCURRENT = 5
_QUERY_PARAMS = {"enable_logging", "optimize_streaming_latency", "output_format"}
# The JSON body fields are whatever the official SDK's `stream()` can send, minus its query params.
TTS_BODY_FIELDS = (
    frozenset(inspect.signature(AsyncRawTextToSpeechClient.stream).parameters)
    - _QUERY_PARAMS
    - {
        "self",
        "voice_id",
        "request_options",
    }
)
DEFAULT_TRANSCRIPT = "hello from the emulator"


def _error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Scenario:
    body = json.dumps({"detail": {"status": code, "message": message}}).encode()
    return Scenario(status=status, body=body, headers={"content-type": "application/json", **(headers or {})})


def invalid_api_key() -> Scenario:
    return _error(401, "invalid_api_key", "Invalid API key")


def quota_exceeded() -> Scenario:
    return _error(
        401,
        "quota_exceeded",
        "This request exceeds your quota of 10000. You have 0 credits remaining, while 42 credits are required for this request.",
    )


def too_many_concurrent(retry_after: float | None = None) -> Scenario:
    headers = {
        "current-concurrent-requests": str(MAX_CONCURRENT + 1),
        "maximum-concurrent-requests": str(MAX_CONCURRENT),
    }
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    message = f"You have too many concurrent requests. Your current plan allows a maximum of {MAX_CONCURRENT} concurrent requests."
    return _error(429, "too_many_concurrent_requests", message, headers)


def system_busy() -> Scenario:
    return _error(429, "system_busy", "We're experiencing high traffic. Please try again later.")


def voice_not_found() -> Scenario:
    return _error(404, "voice_not_found", "A voice with the voice_id was not found.")


def server_error(status: int = 500) -> Scenario:
    return _error(status, "internal_server_error", "An internal error occurred.")


def validation_error(field: str = "text") -> Scenario:
    body = {"detail": [{"loc": ["body", field], "msg": "Field required", "type": "missing"}]}
    return Scenario(status=422, body=json.dumps(body).encode(), headers={"content-type": "application/json"})


def echo_key_error(key: str) -> Scenario:
    """A 401 that echoes the presented key, to prove our errors redact it."""
    return _error(401, "invalid_api_key", f"Invalid API key: {key}")


def parse_output_format(value: str) -> tuple[str, int]:
    """`pcm_16000` → ("pcm", 16000); raises ValueError for formats the emulator cannot make."""
    kind, _, rate = value.partition("_")
    if kind in ("pcm", "ulaw", "alaw") and rate.isdigit():
        if kind != "pcm" and rate != "8000":
            raise ValueError(value)
        return kind, int(rate)
    raise ValueError(value)


def encode_tone(output_format: str, seconds: float = 0.5) -> bytes:
    kind, rate = parse_output_format(output_format)
    samples = tone_pcm16(rate, seconds=seconds)
    if kind == "ulaw":
        return ulaw_encode(samples)
    if kind == "alaw":
        return alaw_encode(samples)
    return samples.astype("<i2").tobytes()


class ElevenLabsEmulator:
    def __init__(self, *, valid_keys: set[str] | None = None, tone_seconds: float = 0.5) -> None:
        self.recorder = Recorder()
        self.valid_keys = valid_keys
        self.tone_seconds = tone_seconds
        self.stream_input = StreamInputEmulator(recorder=self.recorder, valid_keys=valid_keys)
        """The `stream-input` WebSocket (tests/emulators/elevenlabs_ws.py): its knobs and records."""
        self.realtime_stt = RealtimeSTTEmulator(recorder=self.recorder, valid_keys=valid_keys)
        """The realtime STT WebSocket (tests/emulators/elevenlabs_stt_ws.py): its knobs and records."""
        silence_dropped_connection_logs()
        self.app = Starlette(
            routes=[
                WebSocketRoute("/v1/text-to-speech/{voice_id}/stream-input", self.stream_input.serve),
                WebSocketRoute("/v1/speech-to-text/realtime", self.realtime_stt.serve),
                Route("/v1/text-to-speech/{voice_id}/stream", self.tts, methods=["POST"]),
                Route("/v1/text-to-speech/{voice_id}", self.tts, methods=["POST"]),
                Route("/v1/speech-to-text", self.stt, methods=["POST"]),
                Route("/v1/user", self.user, methods=["GET"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/voices", self.voices, methods=["GET"]),
            ]
        )

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {
            "request-id": uuid.uuid4().hex,
            "current-concurrent-requests": "1",
            "maximum-concurrent-requests": str(MAX_CONCURRENT),
            **(extra or {}),
        }

    def _auth_failure(self, request: Request) -> Response | None:
        key = request.headers.get("xi-api-key")
        if not key:
            return _as_response(
                _error(401, "needs_authorization", "Neither authorization header nor xi-api-key received.")
            )
        if self.valid_keys is not None and key not in self.valid_keys:
            return _as_response(invalid_api_key())
        return None

    async def tts(self, request: Request) -> Response:
        body = await self.recorder.record_json(request)
        if (failure := self._auth_failure(request)) is not None:
            return failure
        scenario = self.recorder.next_scenario()
        if scenario.status != 200:
            return _as_response(scenario)
        if (problem := _tts_body_problem(body)) is not None:
            return JSONResponse({"detail": [problem]}, status_code=422)
        output_format = request.query_params.get("output_format", "mp3_44100_128")
        try:
            audio = encode_tone(output_format, self.tone_seconds)
        except ValueError:
            return _as_response(
                _error(400, "invalid_output_format", f"The emulator cannot produce {output_format}.")
            )
        assert isinstance(body, dict)
        headers = self._headers(
            {"character-cost": str(len(body["text"])), "history-item-id": uuid.uuid4().hex}
        )
        media_type = "audio/basic" if output_format.startswith(("ulaw", "alaw")) else "audio/pcm"
        return ScriptedStream(
            split(audio, scenario.chunks), scenario, self.recorder, media_type=media_type, headers=headers
        )

    async def stt(self, request: Request) -> Response:
        fields, files = await self.recorder.record_upload(request)
        if (failure := self._auth_failure(request)) is not None:
            return failure
        scenario = self.recorder.next_scenario()
        if scenario.status != 200:
            return _as_response(scenario)
        if "model_id" not in fields:
            return JSONResponse(
                {"detail": [{"loc": ["body", "model_id"], "msg": "Field required", "type": "missing"}]},
                status_code=422,
            )
        if "file" not in files and "source_url" not in fields and "cloud_storage_url" not in fields:
            return _as_response(_error(400, "invalid_parameters", "Must provide either file or source_url."))
        try:
            samples, rate = soundfile.read(io.BytesIO(files.get("file", b"")), dtype="int16")
        except (soundfile.LibsndfileError, RuntimeError, TypeError):
            return _as_response(
                _error(400, "invalid_content", "The uploaded file could not be decoded as audio.")
            )
        duration = len(samples) / rate
        text = scenario.transcript if scenario.transcript is not None else DEFAULT_TRANSCRIPT
        payload = {
            "language_code": fields.get("language_code") or "eng",
            "language_probability": 0.98,
            "text": text,
            "words": scribe_words(text, duration),
            "transcription_id": uuid.uuid4().hex,
            "audio_duration_secs": round(duration, 3),
        }
        pieces = [json.dumps(payload).encode()]
        return ScriptedStream(
            pieces, scenario, self.recorder, media_type="application/json", headers=self._headers()
        )

    async def user(self, request: Request) -> Response:
        self.recorder.record_request(request)
        if (failure := self._auth_failure(request)) is not None:
            return failure
        scenario = self.recorder.next_scenario()
        if scenario.status != 200:
            return _as_response(scenario)
        return JSONResponse(USER_BODY, headers=self._headers())

    async def models(self, request: Request) -> Response:
        self.recorder.record_request(request)
        if (failure := self._auth_failure(request)) is not None:
            return failure
        return JSONResponse(MODELS_BODY, headers=self._headers())

    async def voices(self, request: Request) -> Response:
        self.recorder.record_request(request)
        if (failure := self._auth_failure(request)) is not None:
            return failure
        return JSONResponse(VOICES_BODY, headers=self._headers())


def _as_response(scenario: Scenario) -> Response:
    # The real API sends the concurrency headers on every answer; a scenario may override them.
    headers = {
        "request-id": uuid.uuid4().hex,
        "current-concurrent-requests": "1",
        "maximum-concurrent-requests": str(MAX_CONCURRENT),
        **scenario.headers,
    }
    return Response(scenario.body, status_code=scenario.status, headers=headers)


def _tts_body_problem(body: object) -> dict[str, Any] | None:
    """A FastAPI-style validation item for the first thing wrong with a TTS body, else None."""
    if not isinstance(body, dict):
        return {"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}
    if not isinstance(body.get("text"), str) or not body["text"]:
        return {"loc": ["body", "text"], "msg": "Field required", "type": "missing"}
    unknown = sorted(set(body) - TTS_BODY_FIELDS)
    if unknown:
        return {
            "loc": ["body", unknown[0]],
            "msg": "Extra inputs are not permitted",
            "type": "extra_forbidden",
        }
    if body.get("model_id") is not None and not isinstance(body["model_id"], str):
        return {"loc": ["body", "model_id"], "msg": "Input should be a valid string", "type": "string_type"}
    settings = body.get("voice_settings")
    if settings is not None:
        if not isinstance(settings, dict) or set(settings) - set(VoiceSettings.model_fields):
            return {
                "loc": ["body", "voice_settings"],
                "msg": "Unknown voice setting",
                "type": "extra_forbidden",
            }
        try:
            VoiceSettings.model_validate(settings)
        except pydantic.ValidationError:
            return {"loc": ["body", "voice_settings"], "msg": "Invalid voice settings", "type": "value_error"}
    return None


def scribe_words(text: str, duration: float) -> list[dict[str, Any]]:
    """Scribe's word list: words and the spacing between them, evenly spread over the audio."""
    words = text.split()
    if not words:
        return []
    step = duration / len(words)
    items: list[dict[str, Any]] = []
    for i, word in enumerate(words):
        start, end = round(i * step, 3), round((i + 1) * step * 0.9 + i * step * 0.1, 3)
        if i:
            items.append(
                {"text": " ", "start": items[-1]["end"], "end": start, "type": "spacing", "logprob": 0.0}
            )
        items.append({"text": word, "start": start, "end": end, "type": "word", "logprob": -0.05})
    return items


USER_BODY: dict[str, Any] = {
    "user_id": "emulated-user",
    "workspace_id": "emulated-workspace",
    "subscription": {
        "tier": "creator",
        "character_count": 1234,
        "character_limit": 100000,
        "max_credit_limit_extension": 0,
        "can_extend_character_limit": True,
        "allowed_to_extend_character_limit": True,
        "next_character_count_reset_unix": 1767225600,
        "voice_slots_used": 1,
        "professional_voice_slots_used": 0,
        "professional_voice_slots_used_in_workspace": 0,
        "voice_limit": 30,
        "voice_add_edit_counter": 0,
        "professional_voice_limit": 1,
        "can_extend_voice_limit": False,
        "can_use_instant_voice_cloning": True,
        "can_use_professional_voice_cloning": True,
        "currency": "usd",
        "current_overage": {"amount": "0.00", "currency": "usd"},
        "status": "active",
        "billing_period": "monthly_period",
        "character_refresh_period": "monthly_period",
    },
    "is_new_user": False,
    "can_use_delayed_payment_methods": False,
    "is_onboarding_completed": True,
    "is_onboarding_checklist_completed": True,
    "first_name": "Emu",
    "is_api_key_hashed": True,
    "created_at": 1700000000,
    "seat_type": "workspace_admin",
}

MODELS_BODY: list[dict[str, Any]] = [
    {
        "model_id": model_id,
        "name": name,
        "can_do_text_to_speech": True,
        "can_do_voice_conversion": False,
        "can_use_style": False,
        "can_use_speaker_boost": True,
        "token_cost_factor": factor,
        "maximum_text_length_per_request": 40000,
    }
    for model_id, name, factor in (
        ("eleven_flash_v2_5", "Eleven Flash v2.5", 0.5),
        ("eleven_turbo_v2_5", "Eleven Turbo v2.5", 0.5),
        ("eleven_multilingual_v2", "Eleven Multilingual v2", 1.0),
    )
]

VOICES_BODY: dict[str, Any] = {
    "voices": [
        {
            "voice_id": "21m00Tcm4TlvDq8ikWAM",
            "name": "Rachel",
            "category": "premade",
            "labels": {"accent": "american", "gender": "female"},
            "settings": {
                "stability": 0.5,
                "similarity_boost": 0.75,
                "style": 0.0,
                "use_speaker_boost": True,
                "speed": 1.0,
            },
        },
        {
            "voice_id": "pNInz6obpgDQGcFmaJgB",
            "name": "Adam",
            "category": "premade",
            "labels": {"gender": "male"},
        },
    ]
}
