"""The voice session: turns of speech in, routed responses out, barge-in in between.

A session is driven by its transport through plain method calls (`append_audio`,
`commit`, `create_response`, ...) and answers only through `outbox`, in order. It never
imports a transport. Client mistakes raise `ClientError` (the transport turns it into an
error event and carries on); provider failures become error events and failed responses;
nothing a client sends can end the session.

A turn: server VAD (or a manual commit) closes the user's audio item (`voice.listener`); STT
fills in its transcript (`voice.transcription`; decoded ahead at the caller's pauses where the
engine can, `voice.partials`, which also shortens or lengthens the endpointing silence by what
was said; or, when the STT engine can stream, heard while the caller speaks,
`voice.streamed_stt`); the routed LLM streams a reply that TTS speaks chunk by chunk
(`voice.responses`, `voice.pipeline`). When a pause's partial is a complete sentence, that
reply is started during the endpointing silence and held (`voice.speculation`): the turn's
response uses it when its request is the same, and it is discarded when the caller speaks on
or the final transcript differs. Speech detected during a response cancels it (barge-in) when
`interrupt_response` is on: the outbox refuses its remaining deltas at once, its tasks are
cancelled, and `response.done` says `cancelled` / `turn_detected`.

Billing: every segment holds and settles on its own (`routing.router.Router.account`); a
segment the org's credits cannot cover is refused before it runs (`providers.errors.Refused`,
`insufficient_credits`): an `error` event, and a `failed` response (or a failed transcript for
STT), and the next turn tries again. A finished response's `response.done` carries the turn's
charges (`costs`, filled by the routed engines and LLM as their segments settle).

Function calling: the session's tools go with every LLM request; the model's calls come out
as `function_call` items (`voice.pipeline`). The client runs them, adds each result with
`add_function_output` (`voice.item_edits`), and asks for the next response, whose request
carries the calls and their results (`voice.messages`).
"""

from __future__ import annotations

from collections.abc import Callable

from billing.turn_costs import TurnCosts
from foundation.db import new_id
from providers.speech.base import STTEngine, TTSEngine
from voice.callbacks import SessionTasks, WeakCallback
from voice.clock import SYSTEM_CLOCK, Clock
from voice.config import SessionConfig, SessionLimits
from voice.errors import ClientError
from voice.events import InputCommitted, ItemCreated, SpeechStarted
from voice.history import Conversation, Item, MessageRole
from voice.item_edits import ItemEdits
from voice.latency import LatencyStats, TurnLatency
from voice.listener import EndedTurn, Listener
from voice.llm import TurnLLM
from voice.outbox import Outbox
from voice.partials import Decoded
from voice.responses import Responses, Turn, chat_request
from voice.speculation import EarlyReply, HeldReply
from voice.streamed_stt import StreamedTurn
from voice.transcription import Transcriber
from voice.turn import NullUsage, SessionContext, TurnAccounts, UsageSink

PLAYOUT_MARGIN = 0.3
"""Seconds past a reply's estimated end (`Responses.heard_until`) before a session counts as
quiet: what a client's prebuffer and the network add to its playout."""


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
        """`costs`: where the routed engines and LLM report each turn's charges (None: not billed here)."""
        self.context = context
        self.config = config or SessionConfig()
        self.limits = limits or SessionLimits()
        self.outbox = Outbox()
        self.conversation = Conversation(max_items=self.limits.max_history_items)
        self.stats = stats or LatencyStats()
        self._tts, self._llm = tts, llm
        accounts = TurnAccounts(context, usage or NullUsage())
        self._clock = clock
        self._ids = ids
        self._turn: Turn | None = None
        self._tasks = SessionTasks()
        self._spawn = spawn = self._tasks.spawn
        self._closed = False
        self._held = HeldReply(accounts, llm, tts)
        """The reply started on the turn's last complete-sentence pause, not claimed yet."""
        # The parts call back into the session weakly (`voice.callbacks`): an ended session
        # is freed at once, not left in cycles for the collector.
        self._listener = Listener(
            WeakCallback(self._current_config),
            self.limits,
            outbox=self.outbox,
            stt=stt,
            held=self._held,
            clock=clock,
            ids=ids,
            spawn=spawn,
            speculate=WeakCallback(self._speculate),
            started=WeakCallback(self._speech_started),
            ended=WeakCallback(self._commit_audio),
        )
        self._items = ItemEdits(self.conversation, self.outbox, ids)
        self._transcriber = Transcriber(
            context,
            stt,
            outbox=self.outbox,
            conversation=self.conversation,
            accounts=accounts,
            language=WeakCallback(self._language),
        )
        self._responses = Responses(
            context,
            llm=llm,
            tts=tts,
            outbox=self.outbox,
            conversation=self.conversation,
            accounts=accounts,
            held=self._held,
            costs=costs,
            stats=self.stats,
            spawn=spawn,
            ids=ids,
        )

    # -- configuration -------------------------------------------------------------------

    def _current_config(self) -> SessionConfig:
        return self.config

    def _language(self) -> str | None:
        return self.config.language

    def update(self, config: SessionConfig) -> None:
        """Apply new settings; a new input format or turn detection restarts the input side."""
        old = self.config
        self.config = config
        if (old.input_format, old.turn_detection) != (config.input_format, config.turn_detection):
            self._listener.restart()

    @property
    def responding(self) -> bool:
        return self._responses.active is not None

    # -- input audio (`voice.listener`) ---------------------------------------------------

    def append_audio(self, data: bytes) -> None:
        """Take client audio in the session's input format (the hot path: no task, no I/O)."""
        self._listener.append(data)

    def commit(self) -> str:
        """Manual commit: the buffered audio becomes a user item. Returns its id."""
        return self._listener.commit()

    def clear_input(self) -> None:
        self._listener.clear()

    def _speculate(self, text: str) -> None:
        """The turn so far is `text`, a complete sentence: start the reply it would get, held
        until the turn ends (`voice.speculation`)."""
        self._held.discard()
        config = self.config
        detection = config.turn_detection
        if detection is None or not detection.speculative_reply or not config.create_response:
            return
        if self._responses.active is not None or self._closed:
            return  # the turn will not be answered while a response plays on
        heard = Item("speculated", "user", "audio", text=text, status="completed")
        messages = self.conversation.messages(config.instructions, then=heard)
        # An engine that may stream the whole reply is not asked for a first sentence it may not use.
        speaks_ahead = config.speaks and getattr(self._tts, "open_stream", None) is None
        self._held.reply = EarlyReply(
            chat_request(self.context, self.conversation, config, messages),
            self._listener.streamed_turn_id or self._ids("turn"),
            llm=self._llm,
            tts=self._tts if speaks_ahead else None,
            voice=config.voice,
            spawn=self._spawn,
        )

    def _speech_started(self, item_id: str, audio_start_ms: int) -> None:
        active = self._responses.active
        if active is not None and self.config.interrupt_response:
            self._responses.cancel(active, "turn_detected", announce=SpeechStarted(item_id, audio_start_ms))
        else:
            self.outbox.put(SpeechStarted(item_id, audio_start_ms))

    def _commit_audio(self, ended: EndedTurn) -> None:
        item_id, streamed = ended.item_id, ended.streamed
        item = Item(item_id, "user", "audio", status="in_progress")
        previous = self.conversation.add(item)
        self.outbox.put(InputCommitted(item_id, previous))
        self.outbox.put(ItemCreated(item, previous))
        # A reply started at the turn's last pause, or a stream opened at its speech start,
        # was started under the turn's id (the same one when both were: `_speculate`).
        if self._held.reply is not None:
            turn_id = self._held.reply.turn_id
        else:
            turn_id = streamed.turn_id if streamed is not None else self._ids("turn")
        turn = Turn(turn_id, ended.latency)
        transcribing = self._transcribe(
            turn, item, ended.pcm, ended.rate, ended.respond, ended.decoded, streamed
        )
        turn.stt = self._spawn(transcribing)
        turn.stt.add_done_callback(lambda _: self._unanswered(turn))
        self._turn = turn

    def _unanswered(self, turn: Turn) -> None:
        """The turn's transcription is over: a reply held for it that no response took goes."""
        early = self._held.reply
        if not turn.answered and early is not None and early.turn_id == turn.turn_id:
            self._held.discard()

    async def _transcribe(
        self,
        turn: Turn,
        item: Item,
        pcm: bytes,
        rate: int,
        respond: bool,
        decoded: Decoded | None = None,
        streamed: StreamedTurn | None = None,
    ) -> bool:
        text = await self._transcriber(turn, item, pcm, rate, decoded, streamed)
        heard = text is not None and bool(text.strip())
        # When the caller is already speaking again, that turn's end answers both.
        active = self._responses.active
        if (
            respond
            and heard
            and not self._listener.speaking
            and not self._closed
            and (active is None or self.config.interrupt_response)
        ):
            if active is not None:
                self._responses.cancel(active, "turn_detected")
            self._responses.start(turn, self.config)
        return heard

    # -- conversation items (`voice.item_edits`) -------------------------------------------

    def add_text(
        self, role: MessageRole, text: str, *, previous_item_id: str | None = None, item_id: str | None = None
    ) -> Item:
        return self._items.add_text(role, text, previous_item_id=previous_item_id, item_id=item_id)

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
        return self._items.add_function_call(
            name, arguments, call_id=call_id, previous_item_id=previous_item_id, item_id=item_id
        )

    def add_function_output(
        self, call_id: str, output: str, *, previous_item_id: str | None = None, item_id: str | None = None
    ) -> Item:
        """The client's result of a function call; the next response's request carries it."""
        return self._items.add_function_output(
            call_id, output, previous_item_id=previous_item_id, item_id=item_id
        )

    def delete_item(self, item_id: str) -> None:
        self._items.delete_item(item_id)

    def truncate(self, item_id: str, content_index: int, audio_end_ms: int) -> None:
        """The client played `audio_end_ms` of an assistant item: forget the unheard rest."""
        self._items.truncate(item_id, content_index, audio_end_ms)

    # -- responses (`voice.responses`) -----------------------------------------------------

    def create_response(self, config: SessionConfig | None = None) -> str:
        """Start a response, with the session's settings or, for this response only, `config`
        (`response.create` may change instructions, modalities, tools and the token limit)."""
        active = self._responses.active
        if active is not None:
            raise ClientError(
                "conversation_already_has_active_response",
                f"response {active.run.response_id} is still in progress",
            )
        turn = self._turn
        if turn is None or turn.answered:
            turn = Turn(self._ids("turn"), TurnLatency(self._clock))
        return self._responses.start(turn, config or self.config)

    def cancel_response(self, response_id: str | None = None) -> bool:
        """`response.cancel`: False when there is no such response in progress."""
        return self._responses.cancel_response(response_id)

    @property
    def quiet(self) -> bool:
        """Whether the session could end now losing nothing a client would have to resume: the
        caller is not speaking (nor, without server VAD, has audio waiting for a commit), no
        transcription or response runs, and the last reply has had time to play out."""
        return (
            not self._closed
            and self._listener.quiet
            and not self._tasks.busy
            and self._clock.now() >= self._responses.heard_until + PLAYOUT_MARGIN
        )

    async def until_quiet(self, poll: float = 0.05) -> None:
        """Return at the first `quiet` moment, looking every `poll` seconds of the session's clock."""
        while not self.quiet:
            await self._clock.sleep(poll)

    async def idle(self) -> None:
        """Wait until no transcription or response is running (tests, graceful shutdown)."""
        await self._tasks.idle()

    async def aclose(self) -> None:
        """Cancel everything in flight; usage of cancelled work is still recorded."""
        self._closed = self._listener.closed = True
        self._held.discard()
        self._responses.close()
        await self._listener.aclose()
        await self._tasks.cancel()
