"""The session's response side: one response at a time, from its LLM request through the
pipeline (`voice.pipeline`: reply, speech, function calls) to `response.done`, or cancelled.

A cancelled response (barge-in, `response.cancel`, the session closing) stops at once: the
outbox refuses its remaining deltas, its tasks are cancelled, and its `response.done` says
`cancelled` with the reason, after the charges of what it used have settled. A response whose
turn was speculated (`voice.speculation`) claims the held reply when its request is the same.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from billing.turn_costs import TurnCosts
from providers.errors import Refused
from providers.speech.base import TTSEngine
from providers.types import ChatRequest, Message
from voice.config import SessionConfig
from voice.events import ErrorEvent, OutputItemDone, ResponseCreated, SessionEvent
from voice.history import Conversation
from voice.latency import LatencyStats, TurnLatency
from voice.llm import TurnLLM
from voice.outbox import Outbox
from voice.pipeline import ResponsePipeline, ResponseRun
from voice.speculation import EarlyReply, HeldReply, Spawn
from voice.turn import SessionContext, TurnAccounts

log = logging.getLogger("patchbay.voice")


@dataclass(slots=True)
class Turn:
    """A committed user turn waiting for (or given) its response."""

    turn_id: str
    latency: TurnLatency
    stt: asyncio.Task[bool] | None = None
    transcribed: bool = False
    """The transcript is in the history (its task may still be finishing its bookkeeping)."""
    answered: bool = False


@dataclass(slots=True)
class Active:
    """The response in progress and the task running it."""

    run: ResponseRun
    task: asyncio.Task[None]


def _give(place: asyncio.Future[SessionEvent], event: SessionEvent) -> None:
    """Fill an outbox place (`Outbox.put_later`) once; later offers are ignored."""
    if not place.done():
        place.set_result(event)


def chat_request(
    context: SessionContext,
    conversation: Conversation,
    config: SessionConfig,
    messages: tuple[Message, ...] | None = None,
) -> ChatRequest:
    """The LLM request for a response: the conversation (or `messages`) and the settings."""
    tools = tuple(tool.spec() for tool in config.tools)
    return ChatRequest(
        model=context.model or "default",
        messages=conversation.messages(config.instructions) if messages is None else messages,
        tools=tools,
        # `auto` is every provider's default once tools are sent; without tools no choice
        # is sent at all (OpenAI refuses a tool_choice without tools).
        tool_choice=config.tool_choice if tools and config.tool_choice != "auto" else None,
        max_output_tokens=config.max_output_tokens,
        temperature=config.temperature,
        metadata={"intent": "voice_turn", "session": context.session_id},
    )


class Responses:
    def __init__(
        self,
        context: SessionContext,
        *,
        llm: TurnLLM,
        tts: TTSEngine,
        outbox: Outbox,
        conversation: Conversation,
        accounts: TurnAccounts,
        held: HeldReply,
        costs: TurnCosts | None,
        stats: LatencyStats,
        spawn: Spawn,
        ids: Callable[[str], str],
    ) -> None:
        """`costs`: where the routed engines and LLM report each turn's charges (None: not
        billed here); `held`, the session's speculated reply; `spawn`, the session's tasks."""
        self.context = context
        self.outbox = outbox
        self.conversation = conversation
        self.stats = stats
        self.active: Active | None = None
        self.heard_until = -math.inf
        """When the caller will have heard the last finished reply out, on the turn clock: its
        first audio out plus its length (the client's prebuffer and the network come on top)."""
        self._llm, self._tts = llm, tts
        self._accounts, self._held, self._costs = accounts, held, costs
        self._spawn, self._ids = spawn, ids
        self._closed = False

    def start(self, turn: Turn, config: SessionConfig) -> str:
        """Start the response to `turn` with `config`; returns its id."""
        turn.answered = True
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
        self.active = Active(run, task)
        return run.response_id

    async def _respond(
        self, run: ResponseRun, pipeline: ResponsePipeline, turn: Turn, config: SessionConfig
    ) -> None:
        status = "cancelled"
        early: EarlyReply | None = None
        try:
            if turn.stt is not None and not turn.stt.done() and not turn.transcribed:
                # Manual mode may ask for a response right after the commit: the reply
                # needs the transcript. `wait` (not `gather`) so a cancelled response
                # leaves the transcription running.
                await asyncio.wait({turn.stt})
            run.request = chat_request(self.context, self.conversation, config)
            pipeline.early = early = self._held.claim(run.request, run.turn_id)
            await pipeline()
            status = "failed" if run.error is not None else "completed"
        except Exception:
            log.exception("voice response crashed", extra={"fields": {"session": self.context.session_id}})
            status = "failed"
        finally:
            if early is not None:
                self._held.discard(early)  # what the response did not use of it (a first chunk cut otherwise)
            run.record_usage(
                self._accounts,
                status,
                llm_recorded=self._llm.records_usage,
                tts_recorded=self._tts.records_usage,
            )
        active = self.active
        if active is not None and active.run is run:
            self._finish(run, status)

    def _finish(self, run: ResponseRun, status: str) -> None:
        self.active = None
        if run.audio and run.latency.first_audio is not None:
            self.heard_until = run.latency.first_audio + self.conversation.audio_ms(run.item_id) / 1000
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
        active = self.active
        if active is None or (response_id is not None and response_id != active.run.response_id):
            return False
        self.cancel(active, "client_cancelled")
        return True

    def cancel(self, active: Active, reason: str, *, announce: SessionEvent | None = None) -> None:
        """Stop a response now. The outbox refuses its deltas before anything else is queued."""
        run = active.run
        self.active = None
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

    def close(self) -> None:
        """The session is closing: cancel the response in progress, its `response.done` at once."""
        self._closed = True
        if self.active is not None:
            self.cancel(self.active, "session_closed")
