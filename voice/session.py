"""The voice session: turns of speech in, routed responses out, barge-in in between.

A session is driven by its transport through plain method calls (`append_audio`,
`commit`, `create_response`, ...) and answers only through `outbox`, in order. It never
imports a transport. Client mistakes raise `ClientError` (the transport turns it into an
error event and carries on); provider failures become error events and failed responses;
nothing a client sends can end the session.

A turn: server VAD (or a manual commit) closes the user's audio item; STT fills in its
transcript (decoded ahead at the caller's pauses where the engine can, `voice.partials`,
which also shortens or lengthens the endpointing silence by what was said; or, when the STT
engine can stream, heard while the caller speaks, `voice.streamed_stt`); the routed LLM streams
a reply that TTS speaks chunk by chunk (`voice.pipeline`). When a pause's partial is a complete
sentence, that reply is started during the endpointing silence and held (`voice.speculation`):
the turn's response uses it when its request is the same, and it is discarded when the caller
speaks on or the final transcript differs. Speech detected during a response cancels it
(barge-in) when
`interrupt_response` is on: the outbox refuses its remaining deltas at once, its tasks are
cancelled, and `response.done` says `cancelled` / `turn_detected`.

Billing: every segment holds and settles on its own (`routing.router.Router.account`); a
segment the org's credits cannot cover is refused before it runs (`providers.errors.Refused`,
`insufficient_credits`): an `error` event, and a `failed` response (or a failed transcript for
STT), and the next turn tries again. A finished response's `response.done` carries the turn's
charges (`costs`, filled by the routed engines and LLM as their segments settle).

Function calling: the session's tools go with every LLM request; the model's calls come out
as `function_call` items (`voice.pipeline`). The client runs them, adds each result with
`add_function_output`, and asks for the next response, whose request carries the calls and
their results (`voice.messages`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from billing.turn_costs import TurnCosts
from foundation import tracing
from foundation.db import new_id
from providers.errors import ProviderError, Refused
from providers.speech.base import STTEngine, Transcript, TTSEngine
from providers.speech.streaming_stt import StreamingSTT
from providers.types import ChatRequest, Message
from voice.clock import SYSTEM_CLOCK, Clock
from voice.config import SessionConfig, SessionLimits
from voice.endpointing import SpeechPaused as DetectedPause
from voice.endpointing import SpeechResumed as DetectedResume
from voice.endpointing import SpeechStarted as DetectedStart
from voice.endpointing import SpeechStopped as DetectedStop
from voice.events import (
    ErrorEvent,
    InputCleared,
    InputCommitted,
    InputTranscriptCompleted,
    InputTranscriptFailed,
    ItemCreated,
    ItemDeleted,
    ItemTruncated,
    OutputItemDone,
    ResponseCreated,
    SessionEvent,
    SpeechStarted,
    SpeechStopped,
)
from voice.history import Conversation, HistoryError, Item, MessageRole
from voice.input import InputAudio, InputError, to_stt_rate
from voice.latency import LatencyStats, TurnLatency
from voice.llm import TurnLLM
from voice.outbox import Outbox
from voice.partials import Decoded, Partials, join
from voice.pipeline import ResponsePipeline, ResponseRun
from voice.speculation import EarlyReply
from voice.streamed_stt import StreamedTurn
from voice.turn import NullUsage, SessionContext, TurnAccounts, UsageSink

log = logging.getLogger("patchbay.voice")
T = TypeVar("T")


class ClientError(Exception):
    """A client request the session cannot honour; the session itself is unharmed."""

    def __init__(self, code: str, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


@dataclass(slots=True)
class _Turn:
    """A committed user turn waiting for (or given) its response."""

    turn_id: str
    latency: TurnLatency
    stt: asyncio.Task[bool] | None = None
    transcribed: bool = False
    """The transcript is in the history (its task may still be finishing its bookkeeping)."""
    answered: bool = False


@dataclass(slots=True)
class _Active:
    run: ResponseRun
    task: asyncio.Task[None]


def _give(place: asyncio.Future[SessionEvent], event: SessionEvent) -> None:
    """Fill an outbox place (`Outbox.put_later`) once; later offers are ignored."""
    if not place.done():
        place.set_result(event)


class VoiceSession:
    def __init__(
        self,
        context: SessionContext,
        *,
        stt: STTEngine,
        tts: TTSEngine,
        llm: TurnLLM,
        config: SessionConfig | None = None,
        limits: SessionLimits | None = None,
        usage: UsageSink | None = None,
        costs: TurnCosts | None = None,
        clock: Clock = SYSTEM_CLOCK,
        stats: LatencyStats | None = None,
        ids: Callable[[str], str] = new_id,
    ) -> None:
        self.context = context
        self.config = config or SessionConfig()
        self.limits = limits or SessionLimits()
        self.outbox = Outbox()
        self.conversation = Conversation(max_items=self.limits.max_history_items)
        self.stats = stats or LatencyStats()
        self._stt, self._tts, self._llm = stt, tts, llm
        self._accounts = TurnAccounts(context, usage or NullUsage())
        self._costs = costs
        """Where the routed engines and LLM report each turn's charges (None: not billed here)."""
        self._clock = clock
        self._ids = ids
        self._input = self._new_input()
        self._speech_item: str | None = None
        self._speech_start_ms: int | None = None
        self._turn: _Turn | None = None
        self._active: _Active | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._early: EarlyReply | None = None
        """The reply started on the turn's last complete-sentence pause, not claimed yet."""
        self._partials = Partials(stt, self._spawn, self._end_turn_now, self._speculate)
        self._streamed: StreamedTurn | None = None
        """The turn in progress, streamed to the STT while the caller speaks (a streaming engine)."""

    # -- configuration -------------------------------------------------------------------

    def update(self, config: SessionConfig) -> None:
        """Apply new settings; a new input format or turn detection restarts the input side."""
        old = self.config
        self.config = config
        if (old.input_format, old.turn_detection) != (config.input_format, config.turn_detection):
            self._input = self._new_input()
            self._speech_item = None
            self._partials.reset()
            self._discard_early()
            self._drop_streamed()

    def _new_input(self) -> InputAudio:
        return InputAudio(
            self.config.input_format, self.config.turn_detection, max_seconds=self.limits.max_buffer_seconds
        )

    @property
    def responding(self) -> bool:
        return self._active is not None

    # -- input audio -----------------------------------------------------------------------

    def append_audio(self, data: bytes) -> None:
        """Take client audio in the session's input format (the hot path: no task, no I/O)."""
        before = self._input.end_ms
        try:
            events = self._input.append(data)
        except InputError as exc:
            raise ClientError(exc.code, str(exc), param="audio") from None
        if self._streamed is not None:
            self._streamed.feed(self._input.peek(before, self._input.end_ms))
        for event in events:
            if isinstance(event, DetectedStart):
                self._speech_started(event)
            elif isinstance(event, DetectedPause):
                self._paused(event)
            elif isinstance(event, DetectedResume):
                self._discard_early()
            elif isinstance(event, DetectedStop):
                self._speech_stopped(event.audio_end_ms, event.speech_end_ms)
        if self._input.full and self._input.speaking:
            # A monologue longer than the buffer: end the turn here rather than drop audio.
            assert self._input.detector is not None
            self._input.detector.reset()
            self._speech_stopped(int(self._input.end_ms))

    def _paused(self, event: DetectedPause) -> None:
        detector = self._input.detector
        if detector is None or self._closed:
            return
        start = self._speech_start_ms

        def audio(start_ms: int | None, end_ms: int) -> bytes:
            return self._input.peek(start if start_ms is None else start_ms, end_ms)

        rate = self._input.format.sample_rate
        self._partials.paused(event, detector.position_ms, audio, rate, detector, self.config.language)

    def _end_turn_now(self) -> None:
        """A partial transcript showed the turn complete and its silence already passed."""
        detector = self._input.detector
        for event in detector.finish() if detector is not None else ():
            if isinstance(event, DetectedStop):
                self._speech_stopped(event.audio_end_ms, event.speech_end_ms)

    def _speculate(self, text: str) -> None:
        """The turn so far is `text`, a complete sentence: start the reply it would get, held
        until the turn ends (`voice.speculation`)."""
        self._discard_early()
        config = self.config
        detection = config.turn_detection
        if detection is None or not detection.speculative_reply or not config.create_response:
            return
        if self._active is not None or self._closed:
            return  # the turn will not be answered while a response plays on
        heard = Item("speculated", "user", "audio", text=text, status="completed")
        messages = self.conversation.messages(config.instructions, then=heard)
        # An engine that may stream the whole reply is not asked for a first sentence it may not use.
        speaks_ahead = config.speaks and getattr(self._tts, "open_stream", None) is None
        self._early = EarlyReply(
            self._request(config, messages),
            self._streamed.turn_id if self._streamed is not None else self._ids("turn"),
            llm=self._llm,
            tts=self._tts if speaks_ahead else None,
            voice=config.voice,
            spawn=self._spawn,
        )

    def _discard_early(self, early: EarlyReply | None = None) -> None:
        """Drop `early` (by default the held one): cancel what no response claimed."""
        if early is None:
            early, self._early = self._early, None
        if early is not None:
            early.discard(
                self._accounts, llm_recorded=self._llm.records_usage, tts_recorded=self._tts.records_usage
            )

    def _claim_early(self, run: ResponseRun) -> EarlyReply | None:
        """The held reply when it was started for exactly this response's turn and request."""
        early = self._early
        if early is None or early.turn_id != run.turn_id:
            return None
        self._early = None
        if early.matches(run.request, run.turn_id):
            return early
        self._discard_early(early)
        return None

    def _speech_started(self, event: DetectedStart) -> None:
        self._partials.reset()
        self._discard_early()
        self._speech_item = item_id = self._ids("item")
        self._speech_start_ms = event.audio_start_ms
        if isinstance(self._stt, StreamingSTT) and not self._closed:
            self._drop_streamed()
            rate, turn_id = self._input.format.sample_rate, self._ids("turn")
            opening = self._stt.open_stream(sample_rate=rate, language=self.config.language, turn_id=turn_id)
            self._streamed = StreamedTurn(turn_id, opening, self._spawn)
            self._streamed.feed(self._input.peek(event.audio_start_ms, self._input.end_ms))
        active = self._active
        if active is not None and self.config.interrupt_response:
            self._cancel(active, "turn_detected", announce=SpeechStarted(item_id, event.audio_start_ms))
        else:
            self.outbox.put(SpeechStarted(item_id, event.audio_start_ms))

    def _speech_stopped(self, audio_end_ms: int, speech_end_ms: int | None = None) -> None:
        item_id = self._speech_item or self._ids("item")
        self._speech_item = None
        latency = TurnLatency(self._clock)
        latency.mark("speech_end")
        self.outbox.put(SpeechStopped(item_id, audio_end_ms))
        pcm = self._input.take(self._speech_start_ms, audio_end_ms)
        decoded = self._partials.take(speech_end_ms)
        self._commit_audio(item_id, pcm, latency, respond=self.config.create_response, decoded=decoded)

    def commit(self) -> str:
        """Manual commit: the buffered audio becomes a user item. Returns its id."""
        if self._input.buffered_ms < max(1, self.limits.min_commit_ms):
            raise ClientError(
                "input_audio_buffer_commit_empty",
                f"buffer too small: need at least {self.limits.min_commit_ms} ms of audio, have {self._input.buffered_ms:.0f} ms",
            )
        item_id = self._speech_item or self._ids("item")
        self._speech_item = None
        latency = TurnLatency(self._clock)
        latency.mark("speech_end")
        self._commit_audio(item_id, self._input.take(), latency, respond=False)
        return item_id

    def clear_input(self) -> None:
        self._input.clear()
        if self._input.detector is not None:
            self._input.detector.reset()
        self._speech_item = None
        self._partials.reset()
        self._discard_early()
        self._drop_streamed()
        self.outbox.put(InputCleared())

    def _drop_streamed(self) -> None:
        streamed, self._streamed = self._streamed, None
        if streamed is not None:
            self._spawn(streamed.aclose())

    def _commit_audio(
        self,
        item_id: str,
        pcm: bytes,
        latency: TurnLatency,
        *,
        respond: bool,
        decoded: Decoded | None = None,
    ) -> None:
        """`pcm` is the turn's audio at the input rate (as `InputAudio.take` gives it);
        `decoded`, what its pauses already sent to the STT (`voice.partials`)."""
        item = Item(item_id, "user", "audio", status="in_progress")
        previous = self.conversation.add(item)
        self.outbox.put(InputCommitted(item_id, previous))
        self.outbox.put(ItemCreated(item, previous))
        # A reply started at the turn's last pause, or a stream opened at its speech start,
        # was started under the turn's id (the same one when both were: `_speculate`).
        streamed, self._streamed = self._streamed, None
        if self._early is not None:
            turn_id = self._early.turn_id
        else:
            turn_id = streamed.turn_id if streamed is not None else self._ids("turn")
        turn = _Turn(turn_id, latency)
        rate = self._input.format.sample_rate
        turn.stt = self._spawn(self._transcribe(turn, item, pcm, rate, respond, decoded, streamed))
        turn.stt.add_done_callback(lambda _: self._unanswered(turn))
        self._turn = turn

    def _unanswered(self, turn: _Turn) -> None:
        """The turn's transcription is over: a reply held for it that no response took goes."""
        early = self._early
        if not turn.answered and early is not None and early.turn_id == turn.turn_id:
            self._discard_early()

    async def _transcribe(
        self,
        turn: _Turn,
        item: Item,
        pcm: bytes,
        rate: int,
        respond: bool,
        decoded: Decoded | None = None,
        streamed: StreamedTurn | None = None,
    ) -> bool:
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
                return False
            self.outbox.put(InputTranscriptFailed(item.id, "stt_unavailable", "speech recognition failed"))
            self.outbox.put(
                ErrorEvent(
                    "server_error", "stt_unavailable", f"speech recognition failed ({exc.error_class.value})"
                )
            )
            return False
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
        heard = bool(transcript.text.strip())
        # When the caller is already speaking again, that turn's end answers both.
        if (
            respond
            and heard
            and not self._input.speaking
            and not self._closed
            and (self._active is None or self.config.interrupt_response)
        ):
            if self._active is not None:
                self._cancel(self._active, "turn_detected")
            self._start_response(turn)
        return heard

    async def _heard(
        self, turn: _Turn, pcm: bytes, rate: int, decoded: Decoded | None, streamed: StreamedTurn | None
    ) -> Transcript:
        """The turn's transcript: committed by its stream, else transcribed from its audio now."""
        if streamed is not None and await streamed.opened():
            turn.latency.mark("stt_start")
            transcript = await streamed.commit()
            if transcript is not None:
                return transcript
        pcm = await decoded.tail if decoded is not None else await to_stt_rate(pcm, rate)
        turn.latency.mark("stt_start")
        return await self._stt.transcribe(pcm, language=self.config.language, turn_id=turn.turn_id)

    # -- conversation items ----------------------------------------------------------------

    def add_text(
        self, role: MessageRole, text: str, *, previous_item_id: str | None = None, item_id: str | None = None
    ) -> Item:
        return self._add(Item(item_id or self._ids("item"), role, "text", text=text), previous_item_id)

    def add_function_call(
        self,
        name: str,
        arguments: str,
        *,
        call_id: str | None = None,
        previous_item_id: str | None = None,
        item_id: str | None = None,
    ) -> Item:
        """A call the model made earlier (a client restoring its history)."""
        if call_id is not None and self.conversation.find_call(call_id) is not None:
            raise ClientError(
                "invalid_value",
                f"a function call with call_id {call_id!r} already exists",
                param="item.call_id",
            )
        item = Item(
            item_id or self._ids("item"),
            "assistant",
            "function_call",
            text=arguments,
            call_id=call_id or self._ids("call"),
            name=name,
        )
        return self._add(item, previous_item_id)

    def add_function_output(
        self, call_id: str, output: str, *, previous_item_id: str | None = None, item_id: str | None = None
    ) -> Item:
        """The client's result of a function call; the next response's request carries it."""
        if self.conversation.find_call(call_id) is None:
            raise ClientError(
                "invalid_tool_call_id",
                f"tool call id {call_id!r} not found in the conversation",
                param="item.call_id",
            )
        item = Item(
            item_id or self._ids("item"), "tool", "function_call_output", text=output, call_id=call_id
        )
        return self._add(item, previous_item_id)

    def _add(self, item: Item, previous_item_id: str | None) -> Item:
        try:
            previous = self.conversation.add(item, previous_item_id)
        except HistoryError as exc:
            raise ClientError(
                "item_not_found" if previous_item_id else "invalid_item", str(exc), param="previous_item_id"
            ) from None
        self.outbox.put(ItemCreated(item, previous))
        return item

    def delete_item(self, item_id: str) -> None:
        try:
            self.conversation.delete(item_id)
        except HistoryError as exc:
            raise ClientError("item_not_found", str(exc), param="item_id") from None
        self.outbox.put(ItemDeleted(item_id))

    def truncate(self, item_id: str, content_index: int, audio_end_ms: int) -> None:
        """The client played `audio_end_ms` of an assistant item: forget the unheard rest."""
        if audio_end_ms < 0:
            raise ClientError("invalid_value", "audio_end_ms must not be negative", param="audio_end_ms")
        try:
            self.conversation.truncate(item_id, audio_end_ms)
        except HistoryError as exc:
            raise ClientError("invalid_truncate", str(exc), param="item_id") from None
        self.outbox.put(ItemTruncated(item_id, content_index, audio_end_ms))

    # -- responses -------------------------------------------------------------------------

    def create_response(self, config: SessionConfig | None = None) -> str:
        """Start a response, with the session's settings or, for this response only, `config`
        (`response.create` may change instructions, modalities, tools and the token limit)."""
        if self._active is not None:
            raise ClientError(
                "conversation_already_has_active_response",
                f"response {self._active.run.response_id} is still in progress",
            )
        turn = self._turn
        if turn is None or turn.answered:
            turn = _Turn(self._ids("turn"), TurnLatency(self._clock))
        return self._start_response(turn, config)

    def _start_response(self, turn: _Turn, config: SessionConfig | None = None) -> str:
        turn.answered = True
        config = config or self.config
        speaks = config.speaks
        run = ResponseRun(
            response_id=self._ids("resp"),
            item_id=self._ids("item"),
            turn_id=turn.turn_id,
            request=ChatRequest(model=self.context.model or "default", messages=()),
            audio=speaks,
            voice=config.voice,
            latency=turn.latency,
        )
        self.outbox.put(ResponseCreated(run.response_id, ("audio",) if speaks else ("text",)))
        pipeline = ResponsePipeline(
            run,
            llm=self._llm,
            tts=self._tts,
            output=config.output_format,
            outbox=self.outbox,
            conversation=self.conversation,
            ids=self._ids,
        )
        task = self._spawn(self._respond(run, pipeline, turn, config))
        self._active = _Active(run, task)
        return run.response_id

    async def _respond(
        self, run: ResponseRun, pipeline: ResponsePipeline, turn: _Turn, config: SessionConfig
    ) -> None:
        status = "cancelled"
        early: EarlyReply | None = None
        try:
            if turn.stt is not None and not turn.stt.done() and not turn.transcribed:
                # Manual mode may ask for a response right after the commit: the reply
                # needs the transcript. `wait` (not `gather`) so a cancelled response
                # leaves the transcription running.
                await asyncio.wait({turn.stt})
            run.request = self._request(config)
            pipeline.early = early = self._claim_early(run)
            await pipeline()
            status = "failed" if run.error is not None else "completed"
        except Exception:
            log.exception("voice response crashed", extra={"fields": {"session": self.context.session_id}})
            status = "failed"
        finally:
            if early is not None:
                self._discard_early(
                    early
                )  # what the response did not use of it (a first chunk cut otherwise)
            run.record_usage(
                self._accounts,
                status,
                llm_recorded=self._llm.records_usage,
                tts_recorded=self._tts.records_usage,
            )
        active = self._active
        if active is not None and active.run is run:
            self._finish(run, status)

    def _request(self, config: SessionConfig, messages: tuple[Message, ...] | None = None) -> ChatRequest:
        """The LLM request for a response: the conversation (or `messages`) and the settings."""
        tools = tuple(tool.spec() for tool in config.tools)
        return ChatRequest(
            model=self.context.model or "default",
            messages=self.conversation.messages(config.instructions) if messages is None else messages,
            tools=tools,
            # `auto` is every provider's default once tools are sent; without tools no choice
            # is sent at all (OpenAI refuses a tool_choice without tools).
            tool_choice=config.tool_choice if tools and config.tool_choice != "auto" else None,
            max_output_tokens=config.max_output_tokens,
            temperature=config.temperature,
            metadata={"intent": "voice_turn", "session": self.context.session_id},
        )

    def _finish(self, run: ResponseRun, status: str) -> None:
        self._active = None
        closed = run.close("completed" if status == "completed" else "incomplete")
        for item in closed:
            self.conversation.replace(item)
        if isinstance(run.error, Refused):
            self.outbox.put(ErrorEvent(run.error.error_type, run.error.code, run.error.message))
        elif run.error is not None:
            code = f"{run.error_stage}_unavailable"
            message = f"{run.error_stage} failed ({run.error.error_class.value})"
            self.outbox.put(ErrorEvent("server_error", code, message))
        for item in closed:
            audio = run.audio and item.id == run.item_id
            self.outbox.put(
                OutputItemDone(run.response_id, item, audio, item.text, run.output_index(item.id))
            )
        # Every segment of the turn has settled by now (each settles before its stream closes).
        cost = self._costs.metadata(run.turn_id) if self._costs is not None else None
        self.outbox.put(run.done(status, None if status == "completed" else "error", cost=cost))
        self.stats.observe(run.latency)

    def cancel_response(self, response_id: str | None = None) -> bool:
        """`response.cancel`: False when there is no such response in progress."""
        active = self._active
        if active is None or (response_id is not None and response_id != active.run.response_id):
            return False
        self._cancel(active, "client_cancelled")
        return True

    def _cancel(self, active: _Active, reason: str, *, announce: SessionEvent | None = None) -> None:
        """Stop a response now. The outbox refuses its deltas before anything else is queued."""
        run = active.run
        self._active = None
        self.outbox.cancel(run.response_id)
        active.task.cancel()
        if announce is not None:
            self.outbox.put(announce)
        for item in run.close("incomplete"):
            self.conversation.replace(item)
        if self._costs is None or self._closed:
            self.outbox.put(run.done("cancelled", reason))
            return
        # What the cancelled turn used is charged as its segments unwind (each settles before
        # its stream closes); its response.done waits for that, in its place in the outbox.
        place = self.outbox.put_later()
        waiter = self._spawn(self._done_when_settled(active.task, run, reason, place))
        # Cancelled before it ever ran (the session closing at once), it still gives its place up.
        waiter.add_done_callback(lambda _: _give(place, run.done("cancelled", reason)))

    async def _done_when_settled(
        self, task: asyncio.Task[None], run: ResponseRun, reason: str, place: asyncio.Future[SessionEvent]
    ) -> None:
        cost: dict[str, object] | None = None
        try:
            await asyncio.wait({task})
            if self._costs is not None:
                cost = self._costs.metadata(run.turn_id)
        finally:
            _give(place, run.done("cancelled", reason, cost=cost))

    def _spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def idle(self) -> None:
        """Wait until no transcription or response is running (tests, graceful shutdown)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def aclose(self) -> None:
        """Cancel everything in flight; usage of cancelled work is still recorded."""
        self._closed = True
        self._discard_early()
        if self._active is not None:
            self._cancel(self._active, "session_closed")
        streamed, self._streamed = self._streamed, None
        if streamed is not None:
            await streamed.aclose()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
