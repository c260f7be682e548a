"""The streamed text-to-speech seam: one connection per reply, text in as it is written.

A per-sentence engine (`providers.speech.base.TTSEngine`) is one request per speakable chunk.
A `TTSStream` is one open connection for a whole reply: the voice pipeline `send`s the reply's
words as the LLM writes them (the provider buffers them and generates when it has enough, or
at once on `flush`), `end`s the input when the LLM is done, and reads `audio()` concurrently. Each `SpokenAudio` carries
the text it speaks (from the provider's alignment), so the transcript and the truncation
spans follow what was actually said, not what was sent.

`aclose()` closes the connection at once and is idempotent: barge-in and errors call it, and
so does the end of the reply. Errors are `ProviderError`s whose text never holds a key.
An engine that can open one implements `StreamingTTS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from providers.contract import BillingSource


@dataclass(frozen=True, slots=True)
class SpokenAudio:
    """PCM16 mono audio at the stream's `sample_rate`, and the text it speaks ("" if unknown)."""

    pcm: bytes
    text: str = ""


class TTSStream(ABC):
    """One open streamed-TTS connection; see the module docstring for the contract."""

    name: str
    billing_source: BillingSource
    sample_rate: int
    characters: int = 0
    """Characters sent so far (what a provider bills)."""

    @abstractmethod
    async def send(self, text: str, *, flush: bool = False) -> bool:
        """Speak `text` (whole words) next; with `flush`, generate what is buffered now rather
        than wait for more text. True when this send starts a generation (its audio is due)."""

    @abstractmethod
    async def end(self) -> None:
        """No more text: `audio()` ends after the last chunk's audio."""

    @abstractmethod
    def audio(self) -> AsyncIterator[SpokenAudio]:
        """The reply's audio as it comes; iterate it once, concurrently with `send`."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close the connection now (idempotent); pending audio is dropped."""


@runtime_checkable
class StreamingTTS(Protocol):
    """A TTS engine that can also speak a whole reply over one streamed connection."""

    async def open_stream(self, *, voice: str | None = None, turn_id: str | None = None) -> TTSStream | None:
        """An open stream, or None when this engine will not stream this reply (the caller
        speaks it per sentence instead)."""
        ...
