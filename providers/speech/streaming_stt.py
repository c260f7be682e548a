"""The streamed speech-to-text seam: one connection per utterance, audio in while the caller speaks.

A batch engine (`providers.speech.base.STTEngine`) hears a turn only after its endpoint: one
upload, then the provider's whole decode. An `STTStream` is opened when the caller starts
speaking; the voice session `feed`s each frame of the caller's audio as it arrives (PCM16 mono
at the `sample_rate` the stream was opened for; the stream resamples to what its wire
declares), and at the endpoint `commit` asks for the committed transcript of everything fed,
which the provider has mostly decoded already.

`feed` never blocks and never raises: it is called from the session's per-frame hot path; a
failure of the connection surfaces from `commit`, as a `ProviderError` whose text never holds
a key. `aclose()` closes the connection at once and is idempotent (barge-in, a cleared buffer,
the session's end). An engine that can open one implements `StreamingSTT`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol, runtime_checkable

from providers.contract import BillingSource
from providers.speech.base import Transcript


class STTStream(ABC):
    """One open streamed-STT connection; see the module docstring for the contract."""

    name: str
    billing_source: BillingSource
    sample_rate: int
    """The rate of the PCM16 `feed` takes."""

    @property
    @abstractmethod
    def fed_seconds(self) -> float:
        """Seconds of audio fed so far (what a provider bills)."""

    @property
    def partial(self) -> str:
        """The provider's latest interim transcript ("" when it sent none); it may still change."""
        return ""

    @abstractmethod
    def feed(self, pcm: bytes) -> None:
        """Queue PCM16 mono audio at `sample_rate`; sent in order without blocking the caller."""

    @abstractmethod
    async def commit(self) -> Transcript:
        """The committed transcript of all the audio fed; the stream takes no audio after it."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close the connection now (idempotent); an uncommitted utterance is dropped."""


@runtime_checkable
class StreamingSTT(Protocol):
    """An STT engine that can also hear an utterance over one streamed connection."""

    async def open_stream(
        self, *, sample_rate: int, language: str | None = None, turn_id: str | None = None
    ) -> STTStream | None:
        """An open stream taking PCM16 at `sample_rate`, or None when this engine will not
        stream this utterance (the caller transcribes the turn's audio at its end instead)."""
        ...
