"""Partial transcripts: decode at each pause, so the turn's transcript is ready at its end.

The endpointing silence is time the STT would otherwise spend idle. When the caller pauses
(`SpeechPaused`, `pause_ms` of unvoiced audio), `Partials.paused` hands what was said so far
to the STT engine's `prefetch` (an unbilled, speculative decode; engines that cannot
speculate answer None and nothing changes). Two things follow:

- the partial text picks the silence this turn needs (`voice.endpoint_policy`): after a
  complete sentence the turn may end at once if that much silence has already passed;
- a complete sentence, with nothing said since, is handed on (`sentence`): the session may
  start the reply on it while the silence runs (`voice.speculation`);
- when the turn ends with no speech after the pause (the stop's `speech_end_ms` is the
  pause's), the turn is transcribed from exactly the bytes that were prefetched, which the
  engine recognises and answers from its kept result instead of decoding again. The trailing
  silence after the pause is not sent: it carries no words.

Speech after a pause voids it as the turn's end, but a pause whose partial was decoded and
is a complete sentence is committed: its text stays, and later pauses (and the end) decode
only the audio after it, with the committed text as the engine's context. So a long turn's
last decode covers its last sentence, not the whole turn. A partial that is not a complete
sentence is never committed (the next pause decodes from the last commit again), so a cut
never falls inside a sentence. When the turn ends on audio that was not prefetched, it is
decoded whole, as without partials. One pause at a time per session, and the engine skips
a prefetch when its workers are busy, so CPU stays bounded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from providers.speech.base import STTEngine
from voice.endpoint_policy import ending, silence_needed_ms
from voice.endpointing import SpeechPaused, TurnDetector
from voice.input import to_stt_rate

log = logging.getLogger("patchbay.voice")
Spawn = Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any]"]


@dataclass(slots=True)
class _Pause:
    speech_end_ms: int
    cut_ms: int
    """Where the prefetched audio ends (input position)."""
    pcm: asyncio.Task[bytes]
    decode: asyncio.Task[None] | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Decoded:
    """What a turn's end may reuse: transcribe `tail` (16 kHz, already prefetched) and put
    `committed` before its text."""

    tail: asyncio.Task[bytes]
    committed: str


def join(committed: str, tail: str) -> str:
    return f"{committed} {tail}".strip() if committed else tail


class Partials:
    def __init__(
        self,
        stt: STTEngine,
        spawn: Spawn,
        end_turn: Callable[[], None],
        sentence: Callable[[str], None] = lambda _: None,
    ) -> None:
        self._stt = stt
        self._spawn = spawn
        self._end_turn = end_turn
        """Ends the turn in progress now (the detector's `finish`, handled as a stop)."""
        self._sentence = sentence
        """Takes the turn's transcript so far when a pause's partial completes a sentence."""
        self._pause: _Pause | None = None
        self._committed: list[str] = []
        self._commit_ms: int | None = None

    @property
    def commit_ms(self) -> int | None:
        """Where the committed audio ends: later decodes start here (None: at the turn's start)."""
        return self._commit_ms

    @property
    def committed(self) -> str:
        return " ".join(self._committed)

    def paused(
        self,
        event: SpeechPaused,
        cut_ms: int,
        audio: Callable[[int | None, int], bytes],
        rate: int,
        detector: TurnDetector,
        language: str | None,
    ) -> None:
        """The caller paused at `cut_ms`. `audio(start_ms, end_ms)` reads the turn's audio at
        the input `rate` (start None: from the turn's start) without taking it."""
        previous = self._pause
        if previous is not None and previous.text is not None and ending(previous.text) == "complete":
            self._committed.append(previous.text)
            self._commit_ms = previous.cut_ms
        self._drop_pause()
        pcm = audio(self._commit_ms, cut_ms)
        pause = _Pause(event.speech_end_ms, cut_ms, self._spawn(to_stt_rate(pcm, rate)))
        pause.decode = self._spawn(self._decode(pause, detector, language, self.committed or None))
        self._pause = pause

    async def _decode(
        self, pause: _Pause, detector: TurnDetector, language: str | None, previous: str | None
    ) -> None:
        try:
            pcm = await pause.pcm
            text = await self._stt.prefetch(pcm, language=language, previous=previous)
        except Exception:
            # Speculation only: the turn's own transcription will meet (and report) any fault.
            log.debug("partial transcript failed", exc_info=True)
            return
        if text is None or self._pause is not pause:
            return
        pause.text = text
        if not detector.speaking or detector.speech_end_ms != pause.speech_end_ms:
            return  # the turn ended meanwhile, or the caller spoke again
        if ending(text) == "complete":
            self._sentence(join(self.committed, text))
        needed = silence_needed_ms(text, detector.config)
        if detector.silence_ms >= needed:
            self._end_turn()
        else:
            detector.set_silence_ms(needed)

    def take(self, speech_end_ms: int | None) -> Decoded | None:
        """At the turn's end: the prefetched tail to transcribe and the committed text before
        it, when nothing was said after the last pause (else None: transcribe the turn whole)."""
        pause = self._pause
        committed = self.committed
        if pause is None or speech_end_ms != pause.speech_end_ms:
            self.reset()
            return None
        self._pause = None
        self.reset()
        return Decoded(pause.pcm, committed)

    def reset(self) -> None:
        """Forget the turn's pauses and commits (a new turn, cleared input)."""
        self._drop_pause()
        self._committed = []
        self._commit_ms = None

    def _drop_pause(self) -> None:
        pause, self._pause = self._pause, None
        if pause is not None and pause.decode is not None:
            pause.decode.cancel()
