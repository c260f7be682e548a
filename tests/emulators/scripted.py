"""Scripting, recording and audio streaming shared by the cloud audio emulators.

A test queues `Scenario`s; each request takes the next one (an empty queue means plain
success). The emulator records every request and every client disconnect, so a test can
assert what went over the wire and that a cancelled stream really closed its connection.
The emulator runs on its own thread (tests/emulators/harness.py); a test waits for a
disconnect with `await recorder.wait_disconnect(within=…)`, which blocks a worker thread,
never the test's loop.

Audio is a tone synthesised here and encoded with this module's own G.711 encoders, kept
independent of voice/audio.py so the emulator can check our decoder rather than mirror it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydantic
from starlette.datastructures import UploadFile
from starlette.requests import Request

from tests.emulators.playback import FaultyStream


@dataclass(frozen=True)
class Scenario:
    """What the emulator does with one request.

    `status != 200` answers with `body`/`headers` and nothing else. Otherwise the audio (or
    transcript) is served after `first_byte_delay`, in `chunks` pieces `chunk_delay` apart;
    `stall_after=n` sends n chunks and then holds the connection open until the client
    leaves; `disconnect_after=n` sends n chunks and then drops the connection.
    """

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    first_byte_delay: float = 0.0
    chunks: int = 4
    chunk_delay: float = 0.0
    stall_after: int | None = None
    disconnect_after: int | None = None
    transcript: str | None = None


def ok(**kwargs: Any) -> Scenario:
    return Scenario(**kwargs)


def slow_first_byte(seconds: float, **kwargs: Any) -> Scenario:
    return Scenario(first_byte_delay=seconds, **kwargs)


def stall_after(chunks: int, **kwargs: Any) -> Scenario:
    return Scenario(stall_after=chunks, **kwargs)


def disconnect_after(chunks: int, **kwargs: Any) -> Scenario:
    return Scenario(disconnect_after=chunks, **kwargs)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


class Recorder:
    """The scenario queue plus everything the emulator saw. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Scenario] = deque()
        self.default = Scenario()
        """What a request gets when no scenario is scripted (benches give it provider timings)."""
        self.requests: list[RecordedRequest] = []
        self.disconnects = 0
        self.completed = 0
        self.disconnected_at: float | None = None
        self._disconnected = threading.Event()
        self._requested = threading.Event()

    def script(self, *scenarios: Scenario) -> None:
        with self._lock:
            self._queue.extend(scenarios)

    def next_scenario(self) -> Scenario:
        with self._lock:
            return self._queue.popleft() if self._queue else self.default

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)
        self._requested.set()

    def record_request(self, request: Request, **body: Any) -> None:
        """Record `request` with its parsed body (`json=`, or `form=` and `files=`)."""
        self.record(
            RecordedRequest(
                method=request.method,
                path=request.url.path,
                query=dict(request.query_params),
                headers=dict(request.headers),
                **body,
            )
        )

    async def record_json(self, request: Request) -> Any:
        """Record a JSON request; its body, or None when that is not JSON."""
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        self.record_request(request, json=body)
        return body

    async def record_upload(self, request: Request) -> tuple[dict[str, str], dict[str, bytes]]:
        """Record a multipart request; its text fields and its files."""
        async with request.form() as form:
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            files = {k: await v.read() for k, v in form.items() if isinstance(v, UploadFile)}
        self.record_request(request, form=fields, files=files)
        return fields, files

    def mark_disconnect(self) -> None:
        with self._lock:
            self.disconnects += 1
            self.disconnected_at = time.monotonic()
        self._disconnected.set()

    def mark_completed(self) -> None:
        with self._lock:
            self.completed += 1

    async def wait_disconnect(self, within: float) -> bool:
        return await asyncio.to_thread(self._disconnected.wait, within)

    async def wait_request(self, within: float) -> bool:
        """Until the first request has been recorded (its body fully received)."""
        return await asyncio.to_thread(self._requested.wait, within)


class ScriptedStream(FaultyStream):
    """Streams `pieces` per an audio `Scenario`, recording disconnects and completions."""

    def __init__(
        self,
        pieces: Sequence[bytes],
        scenario: Scenario,
        recorder: Recorder,
        *,
        media_type: str,
        headers: Mapping[str, str],
    ) -> None:
        super().__init__(
            pieces,
            media_type=media_type,
            headers=headers,
            on_disconnect=recorder.mark_disconnect,
            on_complete=recorder.mark_completed,
            first_byte_delay=scenario.first_byte_delay,
            chunk_delay=scenario.chunk_delay,
            stall_after=scenario.stall_after,
            drop_after=scenario.disconnect_after,
        )


def split(data: bytes, pieces: int, *, align: int = 1) -> list[bytes]:
    """Split into `pieces` non-empty parts; cut points are deliberately not sample-aligned
    unless `align` says so, as a real chunked stream may cut mid-sample."""
    pieces = max(1, min(pieces, len(data) // max(align, 1) or 1))
    size = len(data) // pieces
    size -= size % align
    if align == 1 and size > 2 and size % 2 == 0:
        size -= 1
    cuts = [i * size for i in range(pieces)] + [len(data)]
    return [data[a:b] for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


def tone_pcm16(rate: int, *, seconds: float = 0.5, freq: float = 440.0) -> np.ndarray:
    """A faded sine tone as int16 samples: recognisably audio, cheap, deterministic."""
    t = np.arange(int(rate * seconds)) / rate
    envelope = np.minimum(1.0, np.minimum(t, seconds - t) / 0.02)
    return (np.sin(2 * np.pi * freq * t) * envelope * 12000).astype(np.int16)


_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def ulaw_encode(samples: np.ndarray) -> bytes:
    """ITU-T G.711 µ-law, after the reference Sun g711.c."""
    value = samples.astype(np.int32) >> 2
    mask = np.where(value < 0, 0x7F, 0xFF)
    value = np.minimum(np.abs(value), 8159) + 0x21
    seg = np.searchsorted(_ULAW_SEG_END, value, side="left")
    uval = (np.minimum(seg, 7) << 4) | ((value >> (np.minimum(seg, 7) + 1)) & 0x0F)
    out = np.where(seg >= 8, 0x7F ^ mask, uval ^ mask)
    return out.astype(np.uint8).tobytes()


def alaw_encode(samples: np.ndarray) -> bytes:
    """ITU-T G.711 A-law, after the reference Sun g711.c."""
    value = samples.astype(np.int32) >> 3
    mask = np.where(value >= 0, 0xD5, 0x55)
    value = np.where(value >= 0, value, -value - 1)
    seg = np.searchsorted(_ALAW_SEG_END, value, side="left")
    low = np.where(seg < 2, (value >> 1) & 0x0F, (value >> np.clip(seg, 0, 7)) & 0x0F)
    aval = (np.minimum(seg, 7) << 4) | low
    out = np.where(seg >= 8, 0x7F ^ mask, aval ^ mask)
    return out.astype(np.uint8).tobytes()


CANARY_KEY = "sk-test-CANARY-7f3a9c1e5b2d4f6a8c0e"


class CanaryCredential:
    """A `providers.credentials.Credential` whose key is easy to hunt for in errors and logs."""

    fingerprint = "canary"

    def __init__(self, key: str = CANARY_KEY) -> None:
        self._key = key
        self.purposes: list[str] = []

    def reveal(self, purpose: str) -> str:
        self.purposes.append(purpose)
        return self._key

    def __repr__(self) -> str:
        return "CanaryCredential()"


def unknown_fields(model: object, path: str = "$") -> list[str]:
    """Every key that landed in some nested model's `model_extra` (a typo in the emulator)."""
    found: list[str] = []
    if isinstance(model, pydantic.BaseModel):
        found += [f"{path}.{key}" for key in (model.model_extra or {})]
        for name in type(model).model_fields:
            found += unknown_fields(getattr(model, name), f"{path}.{name}")
    elif isinstance(model, list | tuple):
        for i, item in enumerate(model):
            found += unknown_fields(item, f"{path}[{i}]")
    elif isinstance(model, dict):
        for key, item in model.items():
            found += unknown_fields(item, f"{path}.{key}")
    return found


def assert_no_extra(model: object) -> None:
    """A validated SDK model tree with an unknown (e.g. misspelt) key anywhere fails."""
    found = unknown_fields(model)
    assert not found, f"unknown fields: {found}"
