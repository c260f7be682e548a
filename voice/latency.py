"""Per-turn latency marks, what the server itself added, and a process-wide summary.

A turn is marked on the injectable clock at: end of speech (when the turn detector decided
the user stopped, i.e. after the endpointing silence), STT start and final transcript, LLM
request and first token, TTS request and first byte, and the first audio delta handed to
the transport. Provider time (STT, LLM time-to-first-token, TTS time-to-first-byte) is
subtracted from end-of-speech-to-first-audio to give the latency the server added.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from foundation.metrics import observe_turn
from voice.clock import Clock


def _ms(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start) * 1000, 2)


@dataclass(slots=True)
class TurnLatency:
    clock: Clock
    speech_end: float | None = None
    stt_start: float | None = None
    transcript: float | None = None
    llm_request: float | None = None
    llm_first_token: float | None = None
    tts_request: float | None = None
    tts_first_byte: float | None = None
    first_audio: float | None = None
    tts_provider: str | None = None
    stt_route: str | None = None
    """The attempt trace of the turn's transcript (`elevenlabs:org/scribe_v1=skipped:disabled:auth;...`)."""
    tts_route: str | None = None
    """The attempt trace of the reply's first spoken sentence."""

    def mark(self, name: str) -> None:
        """Record `name` now, once: the first occurrence is the one that matters."""
        if getattr(self, name) is None:
            setattr(self, name, self.clock.now())

    @property
    def ttfb_ms(self) -> dict[str, float | None]:
        return {
            "stt": _ms(self.stt_start, self.transcript),
            "llm": _ms(self.llm_request, self.llm_first_token),
            "tts": _ms(self.tts_request, self.tts_first_byte),
        }

    @property
    def v2v_ms(self) -> float | None:
        """End of speech (as detected) to the first audio delta sent."""
        return _ms(self.speech_end, self.first_audio)

    @property
    def server_ms(self) -> float | None:
        """v2v minus the providers' own time; for text turns, request to first audio."""
        start = self.speech_end if self.speech_end is not None else self.llm_request
        total = _ms(start, self.first_audio)
        if total is None:
            return None
        provider = sum(v for v in self.ttfb_ms.values() if v is not None)
        return round(max(0.0, total - provider), 2)

    @property
    def since_speech_end_ms(self) -> dict[str, float | None]:
        """Each milestone as ms after the end of speech (None for a text turn)."""
        return {
            "transcript": _ms(self.speech_end, self.transcript),
            "llm_first_token": _ms(self.speech_end, self.llm_first_token),
            "tts_first_byte": _ms(self.speech_end, self.tts_first_byte),
            "first_audio": _ms(self.speech_end, self.first_audio),
        }

    def report(self) -> dict[str, Any]:
        """The `response.metadata` block."""
        return {
            "since_speech_end_ms": self.since_speech_end_ms,
            "ttfb_ms": self.ttfb_ms,
            "v2v_ms": self.v2v_ms,
            "server_ms": self.server_ms,
            "tts_provider": self.tts_provider,
            **{k: v for k, v in (("stt_route", self.stt_route), ("tts_route", self.tts_route)) if v},
        }


class LatencyStats:
    """A bounded window of recent turns' figures, with percentiles for metrics and benches."""

    def __init__(self, window: int = 2048) -> None:
        self._window = window
        self._series: dict[str, deque[float]] = {}
        self.turns = 0

    def observe(self, turn: TurnLatency) -> None:
        self.turns += 1
        observe_turn(turn.since_speech_end_ms)
        figures = {"v2v_ms": turn.v2v_ms, "server_ms": turn.server_ms}
        figures.update({f"{k}_ttfb_ms": v for k, v in turn.ttfb_ms.items()})
        for name, value in figures.items():
            if value is not None:
                self._series.setdefault(name, deque(maxlen=self._window)).append(value)

    def percentile(self, name: str, q: float) -> float | None:
        values = sorted(self._series.get(name, ()))
        if not values:
            return None
        return values[min(len(values) - 1, int(q * len(values)))]

    def series(self, name: str) -> list[float]:
        """The window's figures of `name`, oldest first (a bench reads the turns of a level)."""
        return list(self._series.get(name, ()))

    def clear(self) -> None:
        """Empty the window (the turn count goes on)."""
        for values in self._series.values():
            values.clear()

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {"turns": self.turns}
        for name in sorted(self._series):
            out[name] = {"p50": self.percentile(name, 0.5), "p95": self.percentile(name, 0.95)}
        return out
