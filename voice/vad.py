"""Frame-level voice activity detection with WebRTC's VAD.

`VoiceActivityDetector` classifies 20 ms frames of PCM16 mono audio as speech or not. It
accepts byte chunks of any size and keeps the remainder for the next call, so callers can
feed whatever their transport delivers. It is the hot path of every live session (50 frames
a second each), so it does no more per frame than one C call and one slice.
"""

from __future__ import annotations

import webrtcvad

FRAME_MS = 20
SUPPORTED_RATES = (8_000, 16_000, 32_000, 48_000)


def mode_for_threshold(threshold: float) -> int:
    """Map an OpenAI-style activation threshold (0.0-1.0) onto WebRTC's modes 0-3.

    Both knobs mean "how sure before calling it speech": the default 0.5 is mode 2.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be within 0.0 and 1.0, got {threshold}")
    return min(3, int(threshold * 4))


class VoiceActivityDetector:
    """Speech/non-speech per 20 ms frame; `mode` 0 (permissive) to 3 (aggressive)."""

    def __init__(self, *, mode: int = 2, sample_rate: int = 16_000) -> None:
        if mode not in (0, 1, 2, 3):
            raise ValueError(f"webrtcvad mode must be 0-3, got {mode}")
        if sample_rate not in SUPPORTED_RATES:
            raise ValueError(f"webrtcvad supports {SUPPORTED_RATES} Hz, got {sample_rate}")
        self.mode = mode
        self.sample_rate = sample_rate
        self.frame_bytes = sample_rate * FRAME_MS // 1000 * 2
        self._vad = webrtcvad.Vad(mode)
        self._buffer = bytearray()

    def is_speech(self, frame: bytes) -> bool:
        """Classify exactly one frame of `frame_bytes` bytes."""
        return bool(self._vad.is_speech(frame, self.sample_rate))

    def process(self, pcm: bytes) -> list[bool]:
        """Classify every whole frame completed by `pcm`; a partial frame waits for more."""
        buffer = self._buffer
        size = self.frame_bytes
        if not buffer and len(pcm) == size:
            # The common case (a transport delivering whole 20 ms frames): no buffering.
            return [bool(self._vad.is_speech(pcm, self.sample_rate))]
        buffer += pcm
        count = len(buffer) // size
        if not count:
            return []
        view = memoryview(buffer)
        vad, rate = self._vad, self.sample_rate
        try:
            results = [vad.is_speech(view[i * size : (i + 1) * size], rate) for i in range(count)]
        finally:
            view.release()
        del buffer[: count * size]
        return results

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)

    def reset(self) -> None:
        """Drop a partial frame and the VAD's memory of recent audio (its hangover state)."""
        self._buffer.clear()
        self._vad = webrtcvad.Vad(self.mode)
