"""The ElevenLabs `stream-input` TTS WebSocket, emulated (mounted by `ElevenLabsEmulator`).

`/v1/text-to-speech/{voice_id}/stream-input?model_id=…&output_format=…`. Every client message
is checked against the official SDK's own types (`InitializeConnection` first, then `SendText`
or `CloseConnection`: field names, the init's single space, text ending in one space), and
every message the emulator sends is built through the SDK's `AudioOutput` / `FinalOutput`,
so a drift of the wire on either side fails here first. A bad message gets what the real API
sends: an error message, then a 1008 close.

Generation, as the service documents it (the SDK's `GenerationConfig`): text is buffered, and
one generation of what is buffered starts when the buffer reaches the schedule's next step
(`generation_config.chunk_length_schedule` of the init, default [120, 160, 250, 290]: the first
generation at 120 characters, the second after 160 more, and so on, the last step repeating;
each step within 50..500), on a `flush` (or `try_trigger_generation`), or on the closing
message. Its audio (a tone) starts `first_byte_delay` seconds after the trigger, and never
before the previous generation's audio has gone, in `chunks` messages whose `alignment`
spreads the generation's characters over them. `generations` records each (text, why).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import pydantic
from elevenlabs.types import AudioOutput, CloseConnection, FinalOutput, InitializeConnection, SendText
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.emulators.scripted import (
    RecordedRequest,
    Recorder,
    Scenario,
    alaw_encode,
    split,
    tone_pcm16,
    ulaw_encode,
)

QUERY_PARAMS = frozenset(
    {
        "model_id",
        "output_format",
        "language_code",
        "enable_logging",
        "enable_ssml_parsing",
        "inactivity_timeout",
        "sync_alignment",
        "auto_mode",
        "apply_text_normalization",
        "seed",
    }
)
DEFAULT_SCHEDULE = (120, 160, 250, 290)


def _fields(model: type[pydantic.BaseModel]) -> frozenset[str]:
    return frozenset(f.alias or name for name, f in model.model_fields.items())


INIT_FIELDS = _fields(InitializeConnection) | {"try_trigger_generation"}
"""What may open a connection (the SDK's own helper also sends `try_trigger_generation`)."""
TEXT_FIELDS = _fields(SendText)


@dataclass
class WsFailure:
    """Answer the first text message (or the init, with `on_init`) with an error, then close."""

    message: str
    error: str | None = None
    close_code: int = 1008
    on_init: bool = False


def failure_for(scenario: Scenario) -> WsFailure:
    """A scripted REST error (`{"detail": {"status", "message"}}`) as the socket reports it."""
    try:
        detail = json.loads(scenario.body)["detail"]
        message, error = str(detail["message"]), str(detail["status"])
    except (ValueError, KeyError, TypeError):
        message, error = "An internal error occurred.", "internal_server_error"
    return WsFailure(message, error, 1011 if scenario.status >= 500 else 1008, on_init=True)


@dataclass
class StreamInputEmulator:
    """Knobs apply to every connection; with `recorder`, each connection is also recorded as a
    request and takes the next scripted `Scenario` (an error status becomes the error message
    and close, `first_byte_delay` and `stall_after` apply), as the REST routes do."""

    recorder: Recorder | None = None
    valid_keys: set[str] | None = None
    first_byte_delay: float = 0.0
    chunks: int = 3
    tone_seconds: float = 0.3
    failure: WsFailure | None = None
    stall: bool = False
    """Accept text and never answer it (for first-audio timeouts)."""
    received: list[dict[str, Any]] = field(default_factory=list)
    queries: list[dict[str, str]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    opened: int = 0
    closed_by_client: int = 0
    finished: int = 0
    generations: list[tuple[str, str]] = field(default_factory=list)
    """Every generation started, as (its text, why: `schedule`, `flush` or `end`)."""

    async def serve(self, websocket: WebSocket) -> None:
        await websocket.accept()
        self.opened += 1
        self.queries.append(dict(websocket.query_params))
        self.headers.append(dict(websocket.headers))
        delay, stall, failure = self.first_byte_delay, self.stall, self.failure
        if self.recorder is not None:
            self.recorder.record(
                RecordedRequest(
                    "GET", websocket.url.path, dict(websocket.query_params), dict(websocket.headers)
                )
            )
            scenario = self.recorder.next_scenario()
            if scenario.status != 200:
                failure = failure_for(scenario)
            delay = scenario.first_byte_delay or delay
            stall = stall or scenario.stall_after is not None
        try:
            await self._serve(websocket, delay, stall, failure)
        except WebSocketDisconnect:
            self.closed_by_client += 1

    async def _serve(self, ws: WebSocket, delay: float, stall: bool, failure: WsFailure | None) -> None:
        problem = self._query_problem(ws)
        first = await self._receive(ws)
        key = ws.headers.get("xi-api-key") or first.get("xi-api-key")
        if problem is None:
            problem = _init_problem(first)
        if problem is None and (not key or (self.valid_keys is not None and key not in self.valid_keys)):
            await _fail(ws, "Invalid API key", "invalid_api_key", 1008)
            return
        if problem is not None:
            await _fail(ws, problem, "invalid_request", 1008)
            return
        if failure is not None and failure.on_init:
            await _fail(ws, failure.message, failure.error, failure.close_code)
            return
        schedule = (first.get("generation_config") or {}).get("chunk_length_schedule") or DEFAULT_SCHEDULE
        if not all(50 <= step <= 500 for step in schedule):
            await _fail(ws, "chunk_length_schedule values must be within 50 and 500", "invalid_request", 1008)
            return
        output_format = ws.query_params.get("output_format", "mp3_44100_128")
        generations: asyncio.Queue[tuple[str, float] | None] = asyncio.Queue()
        speaker = asyncio.create_task(self._speak(ws, generations, output_format, delay))
        try:
            await self._listen(ws, generations, [int(step) for step in schedule], stall, failure)
            await speaker
        finally:
            speaker.cancel()
            with contextlib.suppress(BaseException):
                await speaker

    async def _listen(
        self,
        ws: WebSocket,
        generations: asyncio.Queue[tuple[str, float] | None],
        schedule: list[int],
        stall: bool,
        failure: WsFailure | None,
    ) -> None:
        buffer = ""
        made = 0
        loop = asyncio.get_running_loop()

        def generate(why: str) -> None:
            nonlocal buffer, made
            made += 1
            self.generations.append((buffer, why))
            generations.put_nowait((buffer, loop.time()))
            buffer = ""

        while True:
            message = await self._receive(ws)
            problem = _text_problem(message)
            if problem is not None:
                await _fail(ws, problem, "invalid_request", 1008)
                raise WebSocketDisconnect(1008)
            if failure is not None:
                await _fail(ws, failure.message, failure.error, failure.close_code)
                raise WebSocketDisconnect(failure.close_code)
            text = message["text"]
            if text == "" and stall:
                continue  # hold the connection until the client leaves
            if text == "":
                if buffer.strip():
                    generate("end")
                generations.put_nowait(None)
                return
            buffer += text
            step = schedule[min(made, len(schedule) - 1)]
            flushed = message.get("flush") or message.get("try_trigger_generation")
            if stall:
                buffer = ""
            elif buffer.strip() and (flushed or len(buffer) >= step):
                generate("flush" if flushed else "schedule")

    async def _speak(
        self,
        ws: WebSocket,
        generations: asyncio.Queue[tuple[str, float] | None],
        output_format: str,
        delay: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        while (generation := await generations.get()) is not None:
            text, triggered = generation
            await asyncio.sleep(max(0.0, triggered + delay - loop.time()))
            audio = _tone(output_format, self.tone_seconds)
            pieces = split(audio, self.chunks, align=2 if output_format.startswith("pcm") else 1)
            letters = _spread(text, len(pieces))
            for piece, chars in zip(pieces, letters, strict=True):
                await ws.send_text(audio_message(piece, chars))
        await ws.send_text(FinalOutput.model_validate({"isFinal": True}).model_dump_json(by_alias=True))
        self.finished += 1
        await ws.close(1000)

    async def _receive(self, ws: WebSocket) -> dict[str, Any]:
        raw = await ws.receive_text()
        message = json.loads(raw)
        self.received.append(message)
        return message if isinstance(message, dict) else {"text": None}

    def _query_problem(self, ws: WebSocket) -> str | None:
        unknown = sorted(set(ws.query_params) - QUERY_PARAMS)
        if unknown:
            return f"Unknown query parameter {unknown[0]}"
        output_format = ws.query_params.get("output_format", "mp3_44100_128")
        kind, _, rate = output_format.partition("_")
        if kind not in ("pcm", "ulaw", "alaw") or not rate.isdigit():
            return f"The emulator cannot produce {output_format}"
        return None


def audio_message(audio: bytes, chars: str) -> str:
    """One `AudioOutput` message, built through the SDK's type."""
    starts = [i * 10 for i in range(len(chars))]
    alignment = {"chars": list(chars), "charStartTimesMs": starts, "charDurationsMs": [10] * len(chars)}
    message = AudioOutput.model_validate(
        {
            "audio": base64.b64encode(audio).decode(),
            "alignment": alignment if chars else None,
            "normalizedAlignment": alignment if chars else None,
        }
    )
    return message.model_dump_json(by_alias=True, exclude_none=True)


def _spread(text: str, pieces: int) -> list[str]:
    step = -(-len(text) // pieces) if text else 0
    return [text[i * step : (i + 1) * step] for i in range(pieces)]


def _tone(output_format: str, seconds: float) -> bytes:
    kind, _, rate = output_format.partition("_")
    samples = tone_pcm16(int(rate), seconds=seconds)
    if kind == "ulaw":
        return ulaw_encode(samples)
    if kind == "alaw":
        return alaw_encode(samples)
    return samples.astype("<i2").tobytes()


def _init_problem(message: dict[str, Any]) -> str | None:
    unknown = sorted(set(message) - INIT_FIELDS)
    if unknown:
        return f"Unknown field {unknown[0]} in the first message"
    if message.get("text") != " ":
        return "The first message must have text ' '"
    try:
        InitializeConnection.model_validate(message)
    except pydantic.ValidationError:
        return "Invalid first message"
    return None


def _text_problem(message: dict[str, Any]) -> str | None:
    if message.get("text") == "" and set(message) <= _fields(CloseConnection):
        return None
    unknown = sorted(set(message) - TEXT_FIELDS)
    if unknown:
        return f"Unknown field {unknown[0]}"
    try:
        SendText.model_validate(message)
    except pydantic.ValidationError:
        return "Invalid text message"
    text = message["text"]
    if not isinstance(text, str) or not text.endswith(" "):
        return "Text should end with a single space"
    return None


async def _fail(ws: WebSocket, message: str, error: str | None, code: int) -> None:
    body: dict[str, Any] = {"message": message}
    if error is not None:
        body["error"] = error
    await ws.send_text(json.dumps(body))
    await ws.close(code, reason=message[:100])
