"""The internal accurate STT: Whisper through faster-whisper (CTranslate2) on the CPU.

The model directory is local (see `voice.models` for where it lives and how it is
assembled); nothing is downloaded. The model loads once, on first use or on `load()`, and
every decode runs in a worker thread, at most `max_concurrency` at a time, so the event loop
never blocks. A clip of up to 30 s is encoded over a window fitted to it
(`voice.stt.whisper_window`: 0.2-0.3 s for a 4 s sentence on 2 shared vCPUs, against 0.9 s
over the fixed 30 s window); longer clips, and a pass that looks repetitive, take the full path.

`prefetch` decodes what a caller has said so far while the endpointing silence runs (the
session calls it at each pause). At most one speculative decode more than there are workers
is queued or running at a time (so the latest pause's may wait behind an earlier one instead
of being skipped, which on a loaded CPU meant decoding after the endpoint); further ones are
skipped, so speculation never queues more than that ahead of real turns. Its result is kept for a while, keyed by the audio's
digest: when the turn ends with no further speech, its `transcribe` is the same bytes and
answers from the kept result (or joins the decode still running) instead of decoding again.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from providers.contract import BillingSource, ErrorClass
from providers.errors import ProviderError
from providers.speech.base import STT_SAMPLE_RATE, STTEngine, Transcript
from voice.models import is_model_dir
from voice.stt.whisper_window import decode_fitted
from voice.stt.worker import BlockingRunner

_KEPT_PREFETCHES = 32
"""Speculative results kept for the turns that end on them (a few per live session at most)."""
Decoded = tuple[str, str | None]


def _key(pcm: bytes, language: str | None) -> bytes:
    return hashlib.blake2b(pcm, digest_size=16, person=(language or "").encode()[:16]).digest()


class WhisperSTT(STTEngine):
    billing_source = BillingSource.PLATFORM

    def __init__(
        self,
        model_dir: Path,
        *,
        model_name: str = "whisper-base",
        language: str | None = None,
        compute_type: str = "int8",
        beam_size: int = 1,
        cpu_threads: int = 0,
        pad_seconds: float = 0.5,
        max_concurrency: int = 1,
        fitted_window: bool = True,
        name: str = "internal:whisper",
    ) -> None:
        self.name = name
        self.model_dir = model_dir
        self.model_name = model_name
        self.language = language
        self.compute_type = compute_type
        self.beam_size = beam_size
        self.cpu_threads = cpu_threads
        self.fitted_window = fitted_window
        self._prefetched: OrderedDict[bytes, asyncio.Future[Decoded]] = OrderedDict()
        self._speculating = 0
        """Speculative decodes queued or running: at most one more than there are workers."""
        self._loop: asyncio.AbstractEventLoop | None = None
        """The loop of `_prefetched`'s futures: an engine serving several loops over its life
        (as `BlockingRunner` may) forgets the speculations of the one before."""
        self._padding = np.zeros(int(pad_seconds * STT_SAMPLE_RATE), dtype=np.float32)
        self._runner = BlockingRunner(max_concurrency, name="whisper")
        self._model: Any = None
        self._loading: asyncio.Future[Any] | None = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    async def load(self) -> None:
        """Load the model once (in a worker thread); concurrent callers share the load."""
        if self._model is not None:
            return
        if self._loading is None or self._loading.get_loop() is not asyncio.get_running_loop():
            self._loading = asyncio.ensure_future(self._runner.run(self._load_blocking))
        try:
            self._model = await asyncio.shield(self._loading)
        except BaseException:
            if self._loading.done():
                self._loading = None
            raise

    async def prefetch(
        self, pcm16_16k: bytes, *, language: str | None = None, previous: str | None = None
    ) -> str | None:
        language = language or self.language
        key = _key(pcm16_16k, language)
        self._on_this_loop()
        if key not in self._prefetched:
            if self._model is None or self._speculating > self._runner.limit:
                return None
            decode = asyncio.ensure_future(self._speculate(pcm16_16k, language, previous))
            self._prefetched[key] = decode
            while len(self._prefetched) > _KEPT_PREFETCHES:
                self._prefetched.popitem(last=False)
        try:
            text, _ = await asyncio.shield(self._prefetched[key])
        except Exception:
            self._prefetched.pop(key, None)
            return None
        return text

    def _on_this_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._prefetched, self._speculating = loop, OrderedDict(), 0

    async def _speculate(self, pcm: bytes, language: str | None, previous: str | None) -> Decoded:
        self._speculating += 1
        try:
            return await self._runner.run(self._decode, pcm, language, previous)
        finally:
            self._speculating -= 1

    async def _transcribe(self, pcm16_16k: bytes, language: str | None) -> Transcript:
        await self.load()
        language = language or self.language
        self._on_this_loop()
        kept = self._prefetched.pop(_key(pcm16_16k, language), None)
        decoded: Decoded | None = None
        if kept is not None:
            try:
                decoded = await asyncio.shield(kept)
            except Exception:
                decoded = None  # the speculative pass failed: decode for real below
        if decoded is None:
            decoded = await self._runner.run(self._decode, pcm16_16k, language)
        text, detected = decoded
        return Transcript(
            text=text,
            audio_seconds=len(pcm16_16k) / (2 * STT_SAMPLE_RATE),
            engine=self.name,
            model=self.model_name,
            language=detected,
        )

    def _load_blocking(self) -> Any:
        if not is_model_dir(self.model_dir):
            raise ProviderError(
                ErrorClass.NOT_FOUND,
                f"no Whisper model at {self.model_dir}; assemble it with `python -m voice.models`",
                provider=self.name,
            )
        from faster_whisper import WhisperModel  # heavy import, paid only by servers that use it

        return WhisperModel(
            str(self.model_dir),
            device="cpu",
            compute_type=self.compute_type,
            cpu_threads=self.cpu_threads,
            num_workers=self._runner.limit,
            local_files_only=True,
        )

    def _decode(self, pcm: bytes, language: str | None, previous: str | None = None) -> Decoded:
        speech = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        # Whisper drops or garbles words that touch the clip's edges; a little silence on
        # both sides took WER on our espeak test sentences from 0.19 to 0.10.
        audio = np.concatenate([self._padding, speech, self._padding])
        if self.fitted_window:
            fitted = decode_fitted(self._model, audio, language, beam_size=self.beam_size, previous=previous)
            if fitted is not None:
                return fitted
        segments, info = self._model.transcribe(
            audio,
            language=language,
            beam_size=self.beam_size,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
            initial_prompt=previous,
        )
        # `segments` is lazy: decoding happens while it is consumed, here in the thread.
        text = " ".join(segment.text.strip() for segment in segments).strip()
        return text, info.language
