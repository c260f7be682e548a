"""Server-VAD turn detection: when did the user start and stop speaking?

`TurnDetector` runs the frame-level VAD over a session's input audio and turns it into
`SpeechStarted` / `SpeechStopped` events with OpenAI Realtime `server_vad` semantics:

- speech starts after `min_speech_ms` of consecutive voiced audio; `audio_start_ms` is the
  first voiced frame minus `prefix_padding_ms` (never before 0), so it marks the beginning
  of the audio the STT should hear;
- speech stops after `silence_duration_ms` of unvoiced audio; `audio_end_ms` is the point
  where that silence was complete (so it includes the silence, as OpenAI's does), and
  `speech_end_ms` is the end of the last voiced frame;
- in between, with `pauses` on, `pause_ms` of unvoiced audio is a `SpeechPaused` (once per
  pause): the moment
  to decode what was said so far. The session may then change the silence this turn needs
  (`set_silence_ms`, from `voice.endpoint_policy`) or end the turn at once (`finish`).

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
    sentence_silence_ms: int = 300
    """Silence that ends a turn whose partial transcript is a complete sentence."""
    continuation_silence_ms: int = 1000
    """Silence that ends a turn whose partial transcript trails off ("... and", "um", a comma)."""
    partial_transcripts: bool = True
    """Decode at each pause while the caller speaks (internal STT only); off: one decode at the end."""
    pause_ms: int = 100
    """Unvoiced audio that counts as a pause (a `SpeechPaused`)."""
    speculative_reply: bool = True
    """Start the reply on a pause's complete-sentence partial, held until the turn ends."""

    def __post_init__(self) -> None:
        mode_for_threshold(self.threshold)
        for name in (
            "prefix_padding_ms",
            "silence_duration_ms",
            "min_speech_ms",
            "sentence_silence_ms",
            "continuation_silence_ms",
            "pause_ms",
        ):
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
class SpeechPaused:
    speech_end_ms: int
    """The end of the last voiced frame: the audio up to here is what was said so far."""


@dataclass(frozen=True, slots=True)
class SpeechResumed:
    speech_end_ms: int
    """The end of the pause's last voiced frame (its `SpeechPaused.speech_end_ms`)."""


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    audio_end_ms: int
    speech_end_ms: int


TurnEvent = SpeechStarted | SpeechPaused | SpeechResumed | SpeechStopped


def _frames(ms: int) -> int:
    """Whole frames needed to cover `ms` (at least one)."""
    return max(1, -(-ms // FRAME_MS))


class TurnDetector:
    """Feed PCM16 mono audio in chunks of any size; get turn events back in order."""

    def __init__(
        self,
        config: TurnDetectionConfig | None = None,
        *,
        vad: VoiceActivityDetector | None = None,
        pauses: bool = False,
    ) -> None:
        self.config = config or TurnDetectionConfig()
        self._vad = vad or VoiceActivityDetector(
            mode=self.config.vad_mode, sample_rate=self.config.sample_rate
        )
        self._start_frames = _frames(self.config.min_speech_ms)
        self._stop_frames = _frames(self.config.silence_duration_ms)
        self._pause_frames = _frames(self.config.pause_ms) if pauses else 0
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

    @property
    def silence_ms(self) -> int:
        """Unvoiced audio since the last voiced frame of the turn in progress (0 outside one)."""
        return self._silence * FRAME_MS if self._speaking else 0

    @property
    def speech_end_ms(self) -> int:
        """The end of the last voiced frame of the turn in progress."""
        return self._last_voiced_end * FRAME_MS

    def set_silence_ms(self, ms: int) -> None:
        """The silence that ends the turn in progress (the next turn starts from the config's).
        Less than has already passed ends it at the next frame; `finish` ends it now."""
        self._stop_frames = _frames(ms)

    def feed(self, pcm: bytes) -> list[TurnEvent]:
        events: list[TurnEvent] = []
        frame = self._frame
        for voiced in self._vad.process(pcm):
            frame += 1
            if self._speaking:
                if voiced:
                    if self._silence >= self._pause_frames > 0:
                        # Speech again after a pause: what was decoded there no longer ends it.
                        self._stop_frames = _frames(self.config.silence_duration_ms)
                        events.append(SpeechResumed(speech_end_ms=self._last_voiced_end * FRAME_MS))
                    self._silence = 0
                    self._last_voiced_end = frame
                else:
                    self._silence += 1
                    if self._silence >= self._stop_frames:
                        events.append(self._stop(frame))
                    elif self._silence == self._pause_frames:
                        events.append(SpeechPaused(speech_end_ms=self._last_voiced_end * FRAME_MS))
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
        self._stop_frames = _frames(self.config.silence_duration_ms)
        return SpeechStarted(
            audio_start_ms=max(0, speech_start - self.config.prefix_padding_ms),
            speech_start_ms=speech_start,
        )

    def _stop(self, frame: int) -> SpeechStopped:
        self._speaking = False
        self._run = 0
        self._silence = 0
        return SpeechStopped(audio_end_ms=frame * FRAME_MS, speech_end_ms=self._last_voiced_end * FRAME_MS)
