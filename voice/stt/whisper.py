"""The internal accurate STT: Whisper through faster-whisper (CTranslate2) on the CPU.

The model directory is local (see `voice.models` for where it lives and how it is
assembled); nothing is downloaded. The model loads once, on first use or on `load()`, and
every decode runs in a worker thread, at most `max_concurrency` at a time, so the event loop
never blocks. Whisper base on 2 cores takes about 2 s per short utterance (it always encodes a
30 s window), so it suits accuracy-first turns and tests more than snappy live turns.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np

from providers.contract import BillingSource, ErrorClass
from providers.errors import ProviderError
from providers.speech.base import STT_SAMPLE_RATE, STTEngine, Transcript
from voice.models import is_model_dir
from voice.stt.worker import BlockingRunner


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
        name: str = "internal:whisper",
    ) -> None:
        self.name = name
        self.model_dir = model_dir
        self.model_name = model_name
        self.language = language
        self.compute_type = compute_type
        self.beam_size = beam_size
        self.cpu_threads = cpu_threads
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

    async def _transcribe(self, pcm16_16k: bytes, language: str | None) -> Transcript:
        await self.load()
        text, detected = await self._runner.run(self._decode, pcm16_16k, language or self.language)
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

    def _decode(self, pcm: bytes, language: str | None) -> tuple[str, str | None]:
        speech = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        # Whisper drops or garbles words that touch the clip's edges; a little silence on
        # both sides took WER on our espeak test sentences from 0.19 to 0.10.
        audio = np.concatenate([self._padding, speech, self._padding])
        segments, info = self._model.transcribe(
            audio,
            language=language,
            beam_size=self.beam_size,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
        )
        # `segments` is lazy: decoding happens while it is consumed, here in the thread.
        text = " ".join(segment.text.strip() for segment in segments).strip()
        return text, info.language
