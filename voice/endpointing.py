"""Server-VAD turn detection: when did the user start and stop speaking?

`TurnDetector` runs the frame-level VAD over a session's input audio and turns it into
`SpeechStarted` / `SpeechStopped` events with OpenAI Realtime `server_vad` semantics:

- speech starts after `min_speech_ms` of consecutive voiced audio; `audio_start_ms` is the
  first voiced frame minus `prefix_padding_ms` (never before 0), so it marks the beginning
  of the audio the STT should hear;
- speech stops after `silence_duration_ms` of unvoiced audio; `audio_end_ms` is the point
  where that silence was complete (so it includes the silence, as OpenAI's does), and
  `speech_end_ms` is the end of the last voiced frame.

Every offset is counted in samples of the audio fed since the detector was created, never
read from a clock: feeding 30 s of audio takes milliseconds and always gives the same events.
"""

from __future__ import annotations

from dataclasses import dataclass

from voice.vad import FRAME_MS, VoiceActivityDetector, mode_for_threshold


@dataclass(frozen=True, slots=True)
class TurnDetectionConfig:
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    min_speech_ms: int = 100
    sample_rate: int = 16_000

    def __post_init__(self) -> None:
        mode_for_threshold(self.threshold)
        for name in ("prefix_padding_ms", "silence_duration_ms", "min_speech_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    @property
    def vad_mode(self) -> int:
        return mode_for_threshold(self.threshold)


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    audio_start_ms: int
    speech_start_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    audio_end_ms: int
    speech_end_ms: int


TurnEvent = SpeechStarted | SpeechStopped


def _frames(ms: int) -> int:
    """Whole frames needed to cover `ms` (at least one)."""
    return max(1, -(-ms // FRAME_MS))


class TurnDetector:
    """Feed PCM16 mono audio in chunks of any size; get turn events back in order."""

    def __init__(
        self, config: TurnDetectionConfig | None = None, *, vad: VoiceActivityDetector | None = None
    ) -> None:
        self.config = config or TurnDetectionConfig()
        self._vad = vad or VoiceActivityDetector(
            mode=self.config.vad_mode, sample_rate=self.config.sample_rate
        )
        self._start_frames = _frames(self.config.min_speech_ms)
        self._stop_frames = _frames(self.config.silence_duration_ms)
        self._frame = 0
        self._speaking = False
        self._run = 0
        self._silence = 0
        self._last_voiced_end = 0

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def position_ms(self) -> int:
        """Milliseconds of audio classified so far (a partial frame is not counted yet)."""
        return self._frame * FRAME_MS

    def feed(self, pcm: bytes) -> list[TurnEvent]:
        events: list[TurnEvent] = []
        frame = self._frame
        for voiced in self._vad.process(pcm):
            frame += 1
            if self._speaking:
                if voiced:
                    self._silence = 0
                    self._last_voiced_end = frame
                else:
                    self._silence += 1
                    if self._silence >= self._stop_frames:
                        events.append(self._stop(frame))
            elif voiced:
                self._run += 1
                if self._run >= self._start_frames:
                    events.append(self._start(frame))
            else:
                self._run = 0
        self._frame = frame
        return events

    def finish(self) -> list[TurnEvent]:
        """End of the input stream: close an open turn at the current position."""
        if not self._speaking:
            return []
        return [self._stop(self._frame)]

    def reset(self) -> None:
        """Forget any speech in progress (the timeline keeps counting)."""
        self._vad.reset()
        self._speaking = False
        self._run = 0
        self._silence = 0

    def _start(self, frame: int) -> SpeechStarted:
        speech_start = (frame - self._run) * FRAME_MS
        self._speaking = True
        self._silence = 0
        self._last_voiced_end = frame
        return SpeechStarted(
            audio_start_ms=max(0, speech_start - self.config.prefix_padding_ms),
            speech_start_ms=speech_start,
        )

    def _stop(self, frame: int) -> SpeechStopped:
        self._speaking = False
        self._run = 0
        self._silence = 0
        return SpeechStopped(audio_end_ms=frame * FRAME_MS, speech_end_ms=self._last_voiced_end * FRAME_MS)
