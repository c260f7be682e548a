"""The input side of a session: client audio in, server VAD, the turn's audio out at 16 kHz.

This is the per-frame hot path, 50 calls a second per session, so it does as little as it
can per 20 ms frame: decode (one table lookup for G.711, nothing for PCM), decimate to
8 kHz for the VAD (PCM at 24 kHz averages each 3 samples, 8 kHz G.711 needs nothing), one
WebRTC VAD call, and a buffer append at the input rate. The one proper resample (soxr, to
the 16 kHz the STT engines take) happens once per turn, on the turn's audio, in
`to_stt_rate`: on a worker thread when the turn is long enough for it to matter. Between
turns the buffer is trimmed to the pre-speech padding the next turn may need.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from providers.speech.base import STT_SAMPLE_RATE
from providers.speech.pcm import AudioFormatError, Resampler
from voice.audio import AudioFormat, decode_to_pcm16, resample
from voice.endpointing import TurnDetectionConfig, TurnDetector, TurnEvent

VAD_RATE = 8_000
_TRIM_SLACK_MS = 1000
"""Trim only once this much extra audio has piled up, so trimming is amortised."""
_INLINE_RESAMPLE_SAMPLES = 8_000
"""Shorter turns are resampled on the event loop: a thread hand-off costs about what soxr
takes for a third of a second of audio."""


class InputError(ValueError):
    """Appended bytes that cannot be audio in the session's input format; `code` is for the wire."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class _ToVadRate:
    """PCM16 at the input rate to 8 kHz, for the VAD only.

    An integer ratio (24 kHz PCM, 16 kHz) keeps every n-th sample, with no filter: the
    aliased band is quiet in speech, and on our espeak-ng sentences (clean, and with noise
    added) the turn events matched a soxr-resampled feed within one 20 ms frame, at a
    tenth of the cost. Samples are little-endian in memory on every platform we run.
    """

    def __init__(self, rate: int) -> None:
        self._factor = rate // VAD_RATE if rate % VAD_RATE == 0 else 0
        self._resampler = None if self._factor else Resampler(rate, VAD_RATE, quality="QQ")
        self._phase = 0

    def __call__(self, pcm: bytes) -> bytes:
        if self._resampler is not None:
            return self._resampler.process(pcm)
        factor = self._factor
        if factor == 1:
            return pcm
        samples = memoryview(pcm).cast("h")
        picked = samples[self._phase :: factor].tobytes()
        # Where the next chunk's first kept sample is, so chunking never shifts the grid.
        self._phase = (self._phase - len(samples)) % factor
        return picked


class InputAudio:
    """Decode, detect turns and buffer. Positions are ms of input since the session began."""

    def __init__(
        self, fmt: AudioFormat, turn_detection: TurnDetectionConfig | None, *, max_seconds: float
    ) -> None:
        self.format = fmt
        self._bytes_per_ms = fmt.sample_rate * 2 / 1000
        self.detector = (
            TurnDetector(
                replace(turn_detection, sample_rate=VAD_RATE), pauses=turn_detection.partial_transcripts
            )
            if turn_detection is not None
            else None
        )
        self._to_vad = _ToVadRate(fmt.sample_rate)
        self._max_bytes = int(max_seconds * fmt.sample_rate) * 2
        self._buffer = bytearray()
        self._start_ms = 0.0
        self.last = b""
        """The PCM16 of the chunk `append` last buffered (what a streamed STT is fed next)."""
        if turn_detection is not None:
            self._keep_ms = turn_detection.prefix_padding_ms + turn_detection.min_speech_ms + 60
        else:
            self._keep_ms = 0

    @property
    def buffered_ms(self) -> float:
        return len(self._buffer) / self._bytes_per_ms

    @property
    def end_ms(self) -> float:
        return self._start_ms + self.buffered_ms

    @property
    def speaking(self) -> bool:
        return self.detector is not None and self.detector.speaking

    @property
    def full(self) -> bool:
        return len(self._buffer) >= self._max_bytes

    def append(self, data: bytes) -> list[TurnEvent]:
        """Take one chunk of client audio; returns the turn events it completed.

        Raises `InputError` (nothing is buffered) for bytes that cannot be in the format.
        """
        if data[:4] == b"RIFF":
            raise InputError(
                "invalid_audio_format", "audio must be raw samples in the session's format, not a WAV file"
            )
        try:
            pcm = decode_to_pcm16(data, self.format)
        except AudioFormatError:
            raise InputError(
                "invalid_audio_format",
                f"{len(data)} bytes is not a whole number of {self.format.encoding} samples",
            ) from None
        if self.detector is None:
            if len(self._buffer) + len(pcm) > self._max_bytes:
                raise InputError(
                    "input_audio_buffer_full", "the input audio buffer is full: commit or clear it"
                )
            self._buffer += pcm
            self.last = pcm
            return []
        if not self.detector.speaking:
            # Trim before feeding: once this chunk ends a turn, the caller takes the turn's
            # audio from the buffer, so nothing may be cut after the events are known.
            self._trim()
        self._buffer += pcm
        self.last = pcm
        return self.detector.feed(self._to_vad(pcm))

    def take(self, start_ms: float | None = None, end_ms: float | None = None) -> bytes:
        """Remove the audio between two positions (default: all of it); return it as PCM16 at
        the input rate (`format.sample_rate`), for `to_stt_rate`."""
        start = 0 if start_ms is None else max(0, int((start_ms - self._start_ms) * self._bytes_per_ms) & ~1)
        end = len(self._buffer)
        if end_ms is not None:
            end = min(end, int((end_ms - self._start_ms) * self._bytes_per_ms) & ~1)
        segment = bytes(self._buffer[start:end])
        self.clear(upto=end)
        return segment

    def peek(self, start_ms: float | None, end_ms: float) -> bytes:
        """The audio between two positions, left in the buffer (what `take` would return)."""
        start = 0 if start_ms is None else max(0, int((start_ms - self._start_ms) * self._bytes_per_ms) & ~1)
        end = min(len(self._buffer), int((end_ms - self._start_ms) * self._bytes_per_ms) & ~1)
        return bytes(self._buffer[start:end])

    def clear(self, *, upto: int | None = None) -> None:
        cut = len(self._buffer) if upto is None else upto
        del self._buffer[:cut]
        self._start_ms += cut / self._bytes_per_ms

    def _trim(self) -> None:
        keep = int(self._keep_ms * self._bytes_per_ms) & ~1
        if len(self._buffer) - keep > _TRIM_SLACK_MS * self._bytes_per_ms:
            self.clear(upto=len(self._buffer) - keep)


async def to_stt_rate(pcm: bytes, rate: int) -> bytes:
    """A turn's PCM16 at `rate` as the 16 kHz the STT engines take.

    soxr costs about 0.1 ms per second of 24 kHz audio and releases the GIL, so a long turn
    is resampled on a worker thread: a minute-long monologue would otherwise stall every
    session on this event loop for several milliseconds.
    """
    if rate == STT_SAMPLE_RATE:
        return pcm
    if len(pcm) // 2 < _INLINE_RESAMPLE_SAMPLES:
        return resample(pcm, rate, STT_SAMPLE_RATE)
    return await asyncio.to_thread(resample, pcm, rate, STT_SAMPLE_RATE)
