"""The ElevenLabs realtime speech-to-text WebSocket, emulated (mounted by `ElevenLabsEmulator`).

`/v1/speech-to-text/realtime?model_id=…&audio_format=pcm_<rate>&commit_strategy=manual`. The
query may hold only what the official SDK's URL builder can put there
(`ScribeRealtime._build_websocket_url`), every client message is checked against the SDK's
`InputAudioChunkPayload` (fields, and a `sample_rate` equal to the declared format's), and
every message the emulator sends is built through the SDK's own payload types
(`SessionStartedPayload`, `PartialTranscriptPayload`, `CommittedTranscriptPayload`, the
`Scribe*ErrorPayload`s), so a drift of the wire on either side fails here first. As the real
API does, the socket is accepted before the key is checked: a refused key is an `auth_error`
message and a close, not a refused upgrade (`deny_upgrade` makes scripted failures refuse the
upgrade instead, with the REST error body).

The transcript of a commit is the scripted scenario's `transcript`, else `transcribe` (an async
function of the utterance's PCM16 16 kHz audio, e.g. a real recogniser), else a fixed text;
it is sent `commit_delay` seconds (a scenario's `first_byte_delay`) after the commit, and a
partial transcript goes out every `partial_every` audio messages. A scripted error status is
sent as the matching error message, at the start or, with `fail_on_commit`, at the commit.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pydantic
from elevenlabs.realtime.scribe import AudioFormat, ScribeRealtime
from elevenlabs.types import (
    CommittedTranscriptPayload,
    InputAudioChunkPayload,
    PartialTranscriptPayload,
    ScribeAuthErrorPayload,
    ScribeInputErrorPayload,
    ScribeQuotaExceededErrorPayload,
    ScribeRateLimitedErrorPayload,
    ScribeResourceExhaustedErrorPayload,
    ScribeTranscriberErrorPayload,
    SessionStartedPayload,
)
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.emulators.scripted import RecordedRequest, Recorder, Scenario
from voice.audio import resample

QUERY_PARAMS = frozenset(inspect.signature(ScribeRealtime._build_websocket_url).parameters) - {"self"}
AUDIO_FORMATS = frozenset(f.value for f in AudioFormat)
CHUNK_FIELDS = frozenset(InputAudioChunkPayload.model_fields)
DEFAULT_TRANSCRIPT = "hello from the realtime emulator"
ERROR_PAYLOADS: dict[str, type[pydantic.BaseModel]] = {
    "auth_error": ScribeAuthErrorPayload,
    "quota_exceeded": ScribeQuotaExceededErrorPayload,
    "rate_limited": ScribeRateLimitedErrorPayload,
    "resource_exhausted": ScribeResourceExhaustedErrorPayload,
    "transcriber_error": ScribeTranscriberErrorPayload,
    "input_error": ScribeInputErrorPayload,
}
REST_CODES = {
    "invalid_api_key": "auth_error",
    "needs_authorization": "auth_error",
    "quota_exceeded": "quota_exceeded",
    "too_many_concurrent_requests": "rate_limited",
    "system_busy": "resource_exhausted",
}
Transcribe = Callable[[bytes], Awaitable[str]]


@dataclass
class RealtimeSTTEmulator:
    recorder: Recorder | None = None
    valid_keys: set[str] | None = None
    commit_delay: float = 0.0
    partial_every: int = 5
    transcribe: Transcribe | None = None
    fail_on_commit: bool = False
    deny_upgrade: bool = False
    stall_commit: bool = False
    """Take the commit and never answer it (for commit timeouts)."""
    received: list[dict[str, Any]] = field(default_factory=list)
    queries: list[dict[str, str]] = field(default_factory=list)
    audio: list[bytes] = field(default_factory=list)
    """Each connection's audio as PCM16 16 kHz, filled in as it arrives."""
    opened: int = 0
    committed: int = 0
    closed_by_client: int = 0

    async def serve(self, websocket: WebSocket) -> None:
        scenario = Scenario()
        if self.recorder is not None:
            self.recorder.record(
                RecordedRequest(
                    "GET", websocket.url.path, dict(websocket.query_params), dict(websocket.headers)
                )
            )
            scenario = self.recorder.next_scenario()
        if scenario.status != 200 and self.deny_upgrade:
            await websocket.send_denial_response(
                Response(scenario.body, status_code=scenario.status, headers=dict(scenario.headers))
            )
            return
        await websocket.accept()
        self.opened += 1
        self.queries.append(dict(websocket.query_params))
        try:
            await self._serve(websocket, scenario)
        except WebSocketDisconnect:
            self.closed_by_client += 1

    async def _serve(self, ws: WebSocket, scenario: Scenario) -> None:
        query = dict(ws.query_params)
        problem = _query_problem(query)
        key = ws.headers.get("xi-api-key") or query.get("token")
        if problem is not None:
            await _fail(ws, "input_error", problem, 1008)
            return
        if not key or (self.valid_keys is not None and key not in self.valid_keys):
            await _fail(ws, "auth_error", "You must be authenticated to use this endpoint.", 1008)
            return
        failure = _failure_for(scenario)
        if failure is not None and not self.fail_on_commit:
            await _fail(ws, *failure)
            return
        rate = int(query["audio_format"].removeprefix("pcm_").removeprefix("ulaw_"))
        await ws.send_text(_started(query, rate))
        index = len(self.audio)
        self.audio.append(b"")
        chunks = 0
        while True:
            message = json.loads(await ws.receive_text())
            self.received.append(message)
            problem = _chunk_problem(message, rate)
            if problem is not None:
                await _fail(ws, "input_error", problem, 1008)
                return
            pcm = base64.b64decode(message["audio_base_64"])
            self.audio[index] += resample(pcm, rate, 16_000) if pcm else b""
            chunks += 1 if pcm else 0
            if pcm and self.partial_every and chunks % self.partial_every == 0:
                partial = PartialTranscriptPayload(text=_partial(scenario, chunks))
                await ws.send_text(partial.model_dump_json())
            if not message["commit"]:
                continue
            self.committed += 1
            if failure is not None:
                await _fail(ws, *failure)
                return
            if self.stall_commit:
                continue
            await asyncio.sleep(scenario.first_byte_delay or self.commit_delay)
            text = await self._transcript(scenario, self.audio[index])
            await ws.send_text(CommittedTranscriptPayload(text=text).model_dump_json())

    async def _transcript(self, scenario: Scenario, pcm: bytes) -> str:
        if scenario.transcript is not None:
            return scenario.transcript
        if self.transcribe is not None:
            return await self.transcribe(pcm)
        return DEFAULT_TRANSCRIPT


def _started(query: dict[str, str], rate: int) -> str:
    config = {
        "sample_rate": rate,
        "audio_format": query["audio_format"],
        "model_id": query["model_id"],
        "commit_strategy": query.get("commit_strategy", "manual"),
        "language_code": query.get("language_code"),
        "include_timestamps": query.get("include_timestamps") == "true",
    }
    started = SessionStartedPayload.model_validate({"session_id": "emu0123456789abcdef", "config": config})
    return started.model_dump_json(exclude_none=True)


def _partial(scenario: Scenario, chunks: int) -> str:
    words = (scenario.transcript or DEFAULT_TRANSCRIPT).split()
    return " ".join(words[: max(1, chunks // 5)])


def _query_problem(query: dict[str, str]) -> str | None:
    unknown = sorted(set(query) - QUERY_PARAMS)
    if unknown:
        return f"Unknown query parameter {unknown[0]}"
    if not query.get("model_id"):
        return "model_id is required"
    if query.get("audio_format") not in AUDIO_FORMATS:
        return f"Unsupported audio_format {query.get('audio_format')!r}"
    if query["audio_format"].startswith("ulaw"):
        return "The emulator takes PCM only"
    if query.get("commit_strategy", "manual") not in ("manual", "vad"):
        return "Unsupported commit_strategy"
    return None


def _chunk_problem(message: Any, rate: int) -> str | None:
    if not isinstance(message, dict):
        return "Messages must be JSON objects"
    unknown = sorted(set(message) - CHUNK_FIELDS)
    if unknown:
        return f"Unknown field {unknown[0]}"
    try:
        chunk = InputAudioChunkPayload.model_validate(message)
    except pydantic.ValidationError:
        return "Invalid input_audio_chunk"
    if message.get("message_type") != "input_audio_chunk":
        return "message_type must be input_audio_chunk"
    if chunk.sample_rate != rate:
        return f"sample_rate {chunk.sample_rate} does not match audio_format pcm_{rate}"
    try:
        pcm = base64.b64decode(chunk.audio_base_64, validate=True)
    except binascii.Error:
        return "audio_base_64 is not base64"
    if len(pcm) % 2:
        return "PCM audio must be whole 16-bit samples"
    return None


def _failure_for(scenario: Scenario) -> tuple[str, str, int] | None:
    """A scripted REST error (`{"detail": {"status", "message"}}`) as the socket reports it."""
    if scenario.status == 200:
        return None
    try:
        detail = json.loads(scenario.body)["detail"]
        message, code = str(detail["message"]), str(detail["status"])
    except (ValueError, KeyError, TypeError):
        message, code = "An internal error occurred.", "internal_server_error"
    kind = REST_CODES.get(code, "transcriber_error")
    return kind, message, 1011 if kind == "transcriber_error" else 1008


async def _fail(ws: WebSocket, kind: str, message: str, code: int) -> None:
    payload = ERROR_PAYLOADS[kind].model_validate({"error": message})
    await ws.send_text(payload.model_dump_json())
    await ws.close(code, reason=message[:100])
