"""In-tree fake STT and TTS engines for tests of anything that consumes engines.

They go through the real `STTEngine` / `TTSEngine` bases, so error normalisation, sample
alignment and logging behave as in production. Failures and stalls are scripted; nothing
sleeps: a stalled fake waits on an `asyncio.Event` the test controls.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np

from providers.contract import BillingSource
from providers.speech.base import STTEngine, Transcript, TTSEngine


@dataclass
class STTCall:
    audio_bytes: int
    language: str | None


class FakeSTT(STTEngine):
    """Returns `text` for every segment, or raises `error` (any exception) if given.

    With `gate`, each call waits until the event is set, so tests can hold a call in flight.
    Every call is kept in `calls` unless `keep_calls` is False (a benchmark's long runs).
    """

    def __init__(
        self,
        name: str = "fake:stt",
        *,
        text: str = "hello world",
        error: BaseException | None = None,
        billing_source: BillingSource = BillingSource.PLATFORM,
        gate: asyncio.Event | None = None,
        model: str | None = "fake-1",
        keep_calls: bool = True,
    ) -> None:
        self.name = name
        self.text = text
        self.error = error
        self.billing_source = billing_source
        self.gate = gate
        self.model = model
        self.calls: list[STTCall] = []
        self.keep_calls = keep_calls

    async def _transcribe(self, pcm16_16k: bytes, language: str | None) -> Transcript:
        if self.keep_calls:
            self.calls.append(STTCall(len(pcm16_16k), language))
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return Transcript(
            text=self.text,
            audio_seconds=len(pcm16_16k) / 32_000,
            engine=self.name,
            model=self.model,
            language=language,
        )


def tone(sample_rate: int, seconds: float, *, frequency: float = 440.0, amplitude: int = 8000) -> bytes:
    """A PCM16 sine tone; resampled copies of it can be compared by frequency content."""
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype("<i2").tobytes()


@dataclass
class TTSCall:
    text: str
    voice: str | None


@dataclass
class FakeTTSState:
    chunks_yielded: int = 0
    closed: bool = False
    cancelled: bool = False
    calls: list[TTSCall] = field(default_factory=list)
    entered: asyncio.Event = field(default_factory=asyncio.Event)


class FakeTTS(TTSEngine):
    """Speaks a 440 Hz tone, `chunks` chunks of `chunk_ms` each, at `sample_rate`.

    `error` is raised after `fail_after` chunks (0 = before any audio). With `gate`, the
    engine waits on the event before its first chunk. `state.closed` becomes True when the
    generator's `finally` runs, `state.cancelled` when it was cancelled mid-stream; `state.entered` is set once the engine
    has been called. Every call is kept in `state.calls` unless `keep_calls` is False.
    """

    def __init__(
        self,
        name: str = "fake:tts",
        *,
        sample_rate: int = 24_000,
        chunks: int = 5,
        chunk_ms: int = 40,
        error: BaseException | None = None,
        fail_after: int = 0,
        billing_source: BillingSource = BillingSource.PLATFORM,
        gate: asyncio.Event | None = None,
        chunk_split: int | None = None,
        keep_calls: bool = True,
    ) -> None:
        self.name = name
        self.sample_rate = sample_rate
        self.billing_source = billing_source
        self.chunks = chunks
        self.chunk_ms = chunk_ms
        self.error = error
        self.fail_after = fail_after
        self.gate = gate
        self.chunk_split = chunk_split
        self.state = FakeTTSState()
        self.keep_calls = keep_calls

    def audio(self) -> bytes:
        """Everything this fake says for one segment when nothing fails."""
        return tone(self.sample_rate, self.chunks * self.chunk_ms / 1000)

    async def _synthesize(self, text: str, voice: str | None) -> AsyncIterator[bytes]:
        if self.keep_calls:
            self.state.calls.append(TTSCall(text, voice))
        self.state.entered.set()
        audio = self.audio()
        step = len(audio) // self.chunks if self.chunk_split is None else self.chunk_split
        try:
            if self.gate is not None:
                await self.gate.wait()
            for index, offset in enumerate(range(0, len(audio), step)):
                if self.error is not None and index == self.fail_after:
                    raise self.error
                self.state.chunks_yielded += 1
                yield audio[offset : offset + step]
                await asyncio.sleep(0)
            if self.error is not None:
                raise self.error
        except asyncio.CancelledError:
            self.state.cancelled = True
            raise
        finally:
            self.state.closed = True
