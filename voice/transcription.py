"""A committed turn's transcript: committed by its stream, else decoded from its audio (with what
its pauses already decoded), billed, and put in the conversation in place of its audio item.

An STT failure leaves the item `incomplete` and says why: a failed transcript and an `error`
event (a refused segment, such as one the org's credits cannot cover, with its own code); the
session carries on and the next turn tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from foundation import tracing
from providers.errors import ProviderError, Refused
from providers.speech.base import STTEngine, Transcript
from voice.events import ErrorEvent, InputTranscriptCompleted, InputTranscriptFailed
from voice.history import Conversation, Item
from voice.input import to_stt_rate
from voice.outbox import Outbox
from voice.partials import Decoded, join
from voice.responses import Turn
from voice.streamed_stt import StreamedTurn
from voice.turn import SessionContext, TurnAccounts

log = logging.getLogger("patchbay.voice")


class Transcriber:
    def __init__(
        self,
        context: SessionContext,
        stt: STTEngine,
        *,
        outbox: Outbox,
        conversation: Conversation,
        accounts: TurnAccounts,
        language: Callable[[], str | None],
    ) -> None:
        """`language`: the session's language setting, read when the engine is asked."""
        self.context = context
        self.outbox = outbox
        self.conversation = conversation
        self._stt = stt
        self._accounts = accounts
        self._language = language

    async def __call__(
        self,
        turn: Turn,
        item: Item,
        pcm: bytes,
        rate: int,
        decoded: Decoded | None = None,
        streamed: StreamedTurn | None = None,
    ) -> str | None:
        """Transcribe `turn` (`pcm` at the input `rate`) into `item`: its text, None when STT failed."""
        turn_seconds = len(pcm) / (2 * rate)
        stt = self._stt
        try:
            with tracing.step(
                "voice.stt", {"patchbay.turn_id": turn.turn_id, "patchbay.audio_bytes": len(pcm)}
            ):
                transcript = await self._heard(turn, pcm, rate, decoded, streamed)
        except ProviderError as exc:
            log.warning(
                "stt failed",
                extra={"fields": {"session": self.context.session_id, "error_class": exc.error_class.value}},
            )
            self.conversation.replace(replace(item, status="incomplete"))
            if isinstance(exc, Refused):  # not run at all (the org's credits): say why
                self.outbox.put(InputTranscriptFailed(item.id, exc.code, exc.message))
                self.outbox.put(ErrorEvent(exc.error_type, exc.code, exc.message))
                return None
            self.outbox.put(InputTranscriptFailed(item.id, "stt_unavailable", "speech recognition failed"))
            self.outbox.put(
                ErrorEvent(
                    "server_error", "stt_unavailable", f"speech recognition failed ({exc.error_class.value})"
                )
            )
            return None
        turn.latency.mark("transcript")
        if decoded is not None:
            # The engine heard the tail after the committed sentences (and none of the
            # endpointing silence): the item is the whole turn.
            text = join(decoded.committed, transcript.text)
            transcript = replace(
                transcript, text=text, audio_seconds=max(transcript.audio_seconds, turn_seconds)
            )
        turn.latency.stt_route = getattr(stt, "last_route", None)
        if not stt.records_usage:
            self._accounts.stt(
                turn.turn_id,
                transcript.engine,
                stt.billing_source,
                transcript.audio_seconds,
                model=transcript.model,
                latency_ms=turn.latency.ttfb_ms["stt"],
            )
        self.conversation.replace(replace(item, text=transcript.text, status="completed"))
        turn.transcribed = True
        self.outbox.put(InputTranscriptCompleted(item.id, transcript.text, transcript.audio_seconds))
        return transcript.text

    async def _heard(
        self, turn: Turn, pcm: bytes, rate: int, decoded: Decoded | None, streamed: StreamedTurn | None
    ) -> Transcript:
        """The turn's transcript: committed by its stream, else transcribed from its audio now."""
        if streamed is not None and await streamed.opened():
            turn.latency.mark("stt_start")
            transcript = await streamed.commit()
            if transcript is not None:
                return transcript
        pcm = await decoded.tail if decoded is not None else await to_stt_rate(pcm, rate)
        turn.latency.mark("stt_start")
        return await self._stt.transcribe(pcm, language=self._language(), turn_id=turn.turn_id)
