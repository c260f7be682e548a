"""A reply started on a partial transcript, held back until the endpoint confirms the turn.

When a pause's partial transcript is a complete sentence (`voice.partials`), the turn will
probably end on exactly that text a few hundred milliseconds later, after the endpointing
silence. `EarlyReply` spends that silence: it starts the LLM on the request the turn would
send, pulls its stream into a buffer, and has TTS speak the reply's first chunk into another.
Nothing of it is an event: the client sees nothing until the session's response claims it.

- At the endpoint the response asks for the LLM stream with its own request; when that request
  equals the speculated one (same history, same transcript, same settings) the response
  replays the buffered stream and then follows it live (`stream`), and its first chunk's audio
  comes from the buffer when the chunk is the one spoken ahead (`speech`). One LLM call, one
  TTS segment: the response accounts them as its own.
- Otherwise (the caller spoke again, the final transcript differs, the turn got no response)
  the session `discard`s it: its work is cancelled, and what it used is recorded as a
  cancelled segment for the engines that do not record their own (as a barge-in's is); the
  routed engines settle what they ran themselves.

The first chunk is spoken ahead only by an engine that speaks per sentence: one that may
stream a whole reply (`open_stream`) would be charged a segment the response does not use.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Generic, TypeVar

from billing.usage import SegmentStatus
from providers.errors import ProviderError
from providers.speech.base import TTSEngine, aclose_quietly
from providers.types import ChatRequest, RefusalDelta, StreamEvent, TextDelta, Usage, UsageUpdate
from voice.chunker import SPEECH_CLAUSE_CHARS, SentenceChunker
from voice.llm import ServedBy, TurnLLM
from voice.turn import TtsTally, TurnAccounts

T = TypeVar("T")
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


class _Buffer(Generic[T]):
    """Items produced by one task, replayed to one reader that may join at any point."""

    def __init__(self) -> None:
        self.items: list[T] = []
        self.error: BaseException | None = None
        self.ended = False
        self._changed = asyncio.Event()

    def add(self, item: T) -> None:
        self.items.append(item)
        self._changed.set()

    def end(self, error: BaseException | None = None) -> None:
        self.error, self.ended = error, True
        self._changed.set()

    async def replay(self) -> AsyncIterator[T]:
        index = 0
        while True:
            while index < len(self.items):
                index += 1
                yield self.items[index - 1]
            if self.ended:
                if self.error is not None:
                    raise self.error
                return
            self._changed.clear()
            await self._changed.wait()


class _Replay:
    """The speculated LLM stream as the response's `LLMStream`."""

    def __init__(self, reply: EarlyReply) -> None:
        self._reply = reply

    @property
    def served(self) -> ServedBy | None:
        return self._reply.served

    @served.setter
    def served(self, value: ServedBy | None) -> None:
        self._reply.served = value

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._reply.follow(self._reply.llm_task, self._reply.events)


class EarlyReply:
    def __init__(
        self,
        request: ChatRequest,
        turn_id: str,
        *,
        llm: TurnLLM,
        tts: TTSEngine | None,
        voice: str | None,
        spawn: Spawn,
    ) -> None:
        """`tts` None: the reply is not spoken ahead (text responses, streaming engines);
        `spawn` runs its tasks (the session's, so they are waited for and cancelled with it)."""
        self.request = request
        self.turn_id = turn_id
        self.served: ServedBy | None = None
        self.usage = Usage()
        self.events: _Buffer[StreamEvent] = _Buffer()
        self.audio: _Buffer[bytes] = _Buffer()
        self.first_chunk: str | None = None
        self._llm, self._tts, self._voice = llm, tts, voice
        self._chunker = SentenceChunker(min_clause_chars=SPEECH_CLAUSE_CHARS)
        self._spawn = spawn
        self._claimed_llm = self._claimed_audio = False
        self.tts_task: asyncio.Task[None] | None = None
        self.llm_task = spawn(self._run_llm())

    def matches(self, request: ChatRequest, turn_id: str) -> bool:
        return turn_id == self.turn_id and request == self.request

    def stream(self) -> _Replay:
        """The LLM stream for the response that claims this reply (once)."""
        self._claimed_llm = True
        return _Replay(self)

    def speech(self, chunk: str, voice: str | None) -> AsyncIterator[bytes] | None:
        """The audio of `chunk` when it is the chunk spoken ahead (once); else None."""
        task = self.tts_task
        if task is None or self._claimed_audio or chunk != self.first_chunk or voice != self._voice:
            return None
        self._claimed_audio = True
        return self.follow(task, self.audio)

    async def follow(self, task: asyncio.Task[None], buffer: _Buffer[T]) -> AsyncIterator[T]:
        """`buffer` so far, then live; leaving early (a barge-in) cancels its producer."""
        try:
            async for item in buffer.replay():
                yield item
        finally:
            task.cancel()

    async def _run_llm(self) -> None:
        stream = self._llm.stream(self.request, turn_id=self.turn_id)
        events = aiter(stream)
        error: BaseException | None = None
        try:
            async for event in events:
                self.served = stream.served or self.served
                if isinstance(event, UsageUpdate):
                    self.usage = event.usage
                elif isinstance(event, TextDelta | RefusalDelta) and self.tts_task is None:
                    self._speak_ahead(self._chunker.push(event.text))
                self.events.add(event)
            if self.tts_task is None:
                self._speak_ahead(self._chunker.flush())
        except ProviderError as exc:
            error = exc
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
            self.served = stream.served or self.served
            self.events.end(error)

    def _speak_ahead(self, chunks: list[str]) -> None:
        if self._tts is None or not chunks:
            return
        self.first_chunk = chunks[0]
        self.tts_task = self._spawn(self._run_tts(chunks[0]))

    async def _run_tts(self, chunk: str) -> None:
        assert self._tts is not None
        stream = self._tts.synthesize(chunk, voice=self._voice, turn_id=self.turn_id)
        error: BaseException | None = None
        try:
            async for pcm in stream:
                self.audio.add(pcm)
        except ProviderError as exc:
            error = exc
        finally:
            await aclose_quietly(stream)
            self.audio.end(error)

    def discard(self, accounts: TurnAccounts, *, llm_recorded: bool, tts_recorded: bool) -> None:
        """Cancel what no response claimed; once it has stopped, record what it used as a
        cancelled segment (for the engines that do not record their own). Idempotent."""
        if not self._claimed_llm:
            self._claimed_llm = True
            self.llm_task.cancel()
            if not llm_recorded:
                self.llm_task.add_done_callback(lambda _: self._record_llm(accounts))
        if self.tts_task is not None and not self._claimed_audio:
            self._claimed_audio = True
            self.tts_task.cancel()
            if not tts_recorded:
                self.tts_task.add_done_callback(lambda _: self._record_tts(accounts))

    def _record_llm(self, accounts: TurnAccounts) -> None:
        if self.served is not None:
            accounts.llm(
                self.turn_id, self.served, self.usage, latency_ms=None, status=SegmentStatus.CANCELLED
            )

    def _record_tts(self, accounts: TurnAccounts) -> None:
        tts = self._tts
        if tts is None or not self.audio.items:
            return
        served = getattr(tts, "last_served", None) or tts
        tally = TtsTally()
        seconds = sum(map(len, self.audio.items)) / (2 * tts.sample_rate)
        tally.add(served.name, served.billing_source, len(self.first_chunk or ""), seconds)
        accounts.tts(self.turn_id, tally, latency_ms=None, status=SegmentStatus.CANCELLED)


class HeldReply:
    """The reply started on the turn's last complete-sentence pause, not claimed yet (one at a
    time): the session holds it, its response claims it, anything else discards it."""

    def __init__(self, accounts: TurnAccounts, llm: TurnLLM, tts: TTSEngine) -> None:
        self.reply: EarlyReply | None = None
        self._accounts, self._llm, self._tts = accounts, llm, tts

    def discard(self, early: EarlyReply | None = None) -> None:
        """Drop `early` (by default the held one): cancel what no response claimed."""
        if early is None:
            early, self.reply = self.reply, None
        if early is not None:
            early.discard(
                self._accounts, llm_recorded=self._llm.records_usage, tts_recorded=self._tts.records_usage
            )

    def claim(self, request: ChatRequest, turn_id: str) -> EarlyReply | None:
        """The held reply when it was started for exactly this turn and request."""
        early = self.reply
        if early is None or early.turn_id != turn_id:
            return None
        self.reply = None
        if early.matches(request, turn_id):
            return early
        self.discard(early)
        return None
