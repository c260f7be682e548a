"""The input side of a session: client audio to 16 kHz PCM, the turn buffer, server VAD.

Per appended chunk the work is constant per 20 ms frame: one table lookup (G.711) or
none, one streaming resample, one WebRTC VAD call per frame and a buffer append. Audio is
kept only for the current turn; between turns the buffer is trimmed to the pre-speech
padding the next turn may need.
"""

from __future__ import annotations

from voice.audio import AudioFormat, AudioFormatError, Resampler, decode_to_pcm16
from voice.endpointing import TurnDetectionConfig, TurnDetector, TurnEvent
from voice.stt.base import STT_SAMPLE_RATE

_BYTES_PER_MS = STT_SAMPLE_RATE * 2 // 1000
_TRIM_SLACK_MS = 1000
"""Trim only once this much extra audio has piled up, so trimming is amortised."""


class InputError(ValueError):
    """Appended bytes that cannot be audio in the session's input format; `code` is for the wire."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class InputAudio:
    """Decode, resample, detect turns and buffer. Positions are ms since the session began."""

    def __init__(
        self, fmt: AudioFormat, turn_detection: TurnDetectionConfig | None, *, max_seconds: float
    ) -> None:
        self.format = fmt
        self._resampler = Resampler(fmt.sample_rate, STT_SAMPLE_RATE, quality="MQ")
        self.detector = TurnDetector(turn_detection) if turn_detection is not None else None
        self._max_bytes = int(max_seconds * STT_SAMPLE_RATE) * 2
        self._buffer = bytearray()
        self._start_ms = 0.0
        if turn_detection is not None:
            self._keep_ms = turn_detection.prefix_padding_ms + turn_detection.min_speech_ms + 60
        else:
            self._keep_ms = 0

    @property
    def buffered_ms(self) -> float:
        return len(self._buffer) / _BYTES_PER_MS

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
        pcm16k = self._resampler.process(pcm)
        if self.detector is None and len(self._buffer) + len(pcm16k) > self._max_bytes:
            raise InputError("input_audio_buffer_full", "the input audio buffer is full: commit or clear it")
        if self.detector is None:
            self._buffer += pcm16k
            return []
        if not self.detector.speaking:
            # Trim before feeding: once this chunk ends a turn, the caller takes the turn's
            # audio from the buffer, so nothing may be cut after the events are known.
            self._trim()
        self._buffer += pcm16k
        return self.detector.feed(pcm16k)

    def take(self, start_ms: float | None = None, end_ms: float | None = None) -> bytes:
        """Remove and return the audio between two positions (default: all of it)."""
        start = 0 if start_ms is None else max(0, int((start_ms - self._start_ms) * _BYTES_PER_MS) & ~1)
        end = (
            len(self._buffer)
            if end_ms is None
            else min(len(self._buffer), int((end_ms - self._start_ms) * _BYTES_PER_MS) & ~1)
        )
        segment = bytes(self._buffer[start:end])
        self.clear(upto=end)
        return segment

    def clear(self, *, upto: int | None = None) -> None:
        cut = len(self._buffer) if upto is None else upto
        del self._buffer[:cut]
        self._start_ms += cut / _BYTES_PER_MS

    def _trim(self) -> None:
        excess = len(self._buffer) - (self._keep_ms + _TRIM_SLACK_MS) * _BYTES_PER_MS
        if excess > 0:
            self.clear(upto=len(self._buffer) - self._keep_ms * _BYTES_PER_MS)
