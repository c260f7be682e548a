"""One response: the routed LLM streams into the sentence chunker, TTS speaks each chunk.

The LLM loop and the TTS loop run concurrently (a queue of chunks between them), so the
first sentence is being spoken while the LLM is still writing the second. Audio leaves in
the session's output format, resampled by one streaming resampler per response, and each
chunk's transcript delta is emitted just before its audio. Cancelling the task running
`ResponseRun.run` cancels both loops and closes the TTS stream (its engine's `finally`
kills a subprocess or closes an HTTP stream); the outbox has already refused the rest.
When the TTS engine offers a streamed connection for the whole reply (`open_stream`), the
reply's words go to it as they are written, instead of one segment per chunk
(`voice.streamed_speech`): the queue then also carries each delta as `Written`, before the
chunks cut from it, which the per-sentence path skips.

Output items open as the model writes them: the assistant message at its first words, and a
`function_call` item per tool call, whose arguments stream as cancellable deltas and which is
done as soon as the model finishes it. A reply of tool calls alone has no message and says
nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from billing.usage import SegmentStatus
from foundation import tracing
from foundation.db import new_id
from providers.errors import ProviderError, Refused
from providers.speech.base import TTSEngine, aclose_quietly
from providers.speech.pcm import Resampler
from providers.speech.streaming import TTSStream
from providers.types import (
    ChatRequest,
    Reasoning,
    ReasoningArtifact,
    ReasoningArtifactDone,
    RefusalDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from voice.audio import AudioFormat, encode_from_pcm16
from voice.chunker import SPEECH_CLAUSE_CHARS, SentenceChunker
from voice.events import (
    AudioDelta,
    FunctionCallArgumentsDelta,
    ItemCreated,
    OutputItemAdded,
    OutputItemDone,
    ResponseDone,
    TranscriptDelta,
)
from voice.events import TextDelta as TextOut
from voice.history import Conversation, Item, ItemKind, ItemStatus, Span
from voice.latency import TurnLatency
from voice.llm import LLMStream, ServedBy, TurnLLM
from voice.outbox import Outbox
from voice.speculation import EarlyReply
from voice.streamed_speech import StreamedSpeech, StreamFailed
from voice.turn import TtsTally, TurnAccounts
from voice.word_feed import Written

_END = None


class OutputEncoder:
    """PCM16 at the TTS rate in, the session's output format out, seams-free across chunks."""

    def __init__(self, source_rate: int, output: AudioFormat) -> None:
        self.output = output
        self._source_rate = source_rate
        self._resampler = Resampler(source_rate, output.sample_rate, quality="MQ")
        self._source_samples = 0

    def encode(self, pcm: bytes) -> bytes:
        self._source_samples += len(pcm) // 2
        return self._finish(self._resampler.process(pcm))

    def flush(self) -> bytes:
        return self._finish(self._resampler.flush())

    def _finish(self, pcm: bytes) -> bytes:
        return encode_from_pcm16(pcm, self.output) if pcm else b""

    @property
    def position_ms(self) -> float:
        """Where the audio taken in so far ends on the output timeline.

        Not the output emitted so far: the resampler holds back a few tens of milliseconds
        until more audio (or the flush) comes, but what it holds is already placed on the
        timeline a client plays, which is what `conversation.item.truncate` counts in.
        """
        return self._source_samples * 1000 / self._source_rate


@dataclass(slots=True)
class ResponseRun:
    """The state of one response, readable while it runs (for cancellation and accounting)."""

    response_id: str
    item_id: str
    turn_id: str
    request: ChatRequest
    audio: bool
    voice: str | None
    latency: TurnLatency
    text: str = ""
    spoken: str = ""
    usage: Usage = field(default_factory=Usage)
    served: ServedBy | None = None
    tally: TtsTally = field(default_factory=TtsTally)
    error: ProviderError | None = None
    error_stage: str | None = None
    """`llm` or `tts`: which stage failed, for the error code and the segment status."""
    outputs: dict[str, Item] = field(default_factory=dict)
    """The output items opened so far by id, in output order (the message is `item_id`)."""

    @property
    def spoke(self) -> bool:
        return bool(self.tally.by_engine)

    def item(self, status: ItemStatus) -> Item:
        """The assistant message as it stands: for audio, only the text that was spoken."""
        text = self.spoken if self.audio else self.text
        kind: ItemKind = "audio" if self.audio else "text"
        return Item(self.item_id, "assistant", kind, text=text, status=status, response_id=self.response_id)

    def output_index(self, item_id: str) -> int:
        return list(self.outputs).index(item_id)

    def close(self, status: ItemStatus) -> list[Item]:
        """End the output: items still open (the message, calls cut off mid-arguments) take
        `status`, the message with what was said. Returns those items."""
        closed = []
        for item_id, item in list(self.outputs.items()):
            if item.status == "in_progress":
                final = self.item(status) if item_id == self.item_id else replace(item, status=status)
                self.outputs[item_id] = final
                closed.append(final)
        return closed

    def done(
        self, status: str, reason: str | None, *, cost: Mapping[str, object] | None = None
    ) -> ResponseDone:
        """`cost`: the turn's charges for `response.metadata` (`billing.turn_costs.cost_metadata`)."""
        return ResponseDone(
            self.response_id,
            status,
            reason,
            tuple(self.outputs.values()),
            self.usage.input_tokens,
            self.usage.output_tokens,
            {"turn_id": self.turn_id, **self.latency.report(), **(cost or {})},
            error_code=self.error_code,
            error_type=self.error.error_type if isinstance(self.error, Refused) else None,
        )

    @property
    def error_code(self) -> str | None:
        """What the client is told failed: a refusal's own code, else the stage that failed."""
        if isinstance(self.error, Refused):
            return self.error.code
        return None if self.error is None else f"{self.error_stage}_unavailable"

    def record_usage(
        self, accounts: TurnAccounts, status: str, *, llm_recorded: bool, tts_recorded: bool
    ) -> None:
        """The LLM and TTS segments, by outcome, unless the routed engines wrote them."""
        outcome = {"completed": SegmentStatus.OK, "cancelled": SegmentStatus.CANCELLED}.get(
            status, SegmentStatus.FAILED
        )
        ttfb = self.latency.ttfb_ms
        if self.served is not None and not llm_recorded:
            llm_outcome = SegmentStatus.FAILED if self.error_stage == "llm" else outcome
            accounts.llm(self.turn_id, self.served, self.usage, latency_ms=ttfb["llm"], status=llm_outcome)
        if self.spoke and not tts_recorded:
            accounts.tts(self.turn_id, self.tally, latency_ms=ttfb["tts"], status=outcome)


class ResponsePipeline:
    """Runs a `ResponseRun`; the session owns the task and decides how it ends."""

    def __init__(
        self,
        run: ResponseRun,
        *,
        llm: TurnLLM,
        tts: TTSEngine,
        output: AudioFormat,
        outbox: Outbox,
        conversation: Conversation,
        chunker: SentenceChunker | None = None,
        ids: Callable[[str], str] = new_id,
        early: EarlyReply | None = None,
    ) -> None:
        """`early`: the reply speculated for this very request (`voice.speculation`), whose LLM
        stream and first chunk's audio this response uses instead of asking again."""
        self.run = run
        self.early = early
        self._llm = llm
        self._tts = tts
        self._outbox = outbox
        self._conversation = conversation
        self._ids = ids
        self._calls: dict[int, tuple[str, str]] = {}
        """The stream's tool call index -> (its function_call item id, the call id)."""
        self._reasoning: list[ReasoningArtifact] = []
        """Reasoning artifacts of this response so far; they travel with its calls."""
        self._encoder = OutputEncoder(tts.sample_rate, output)
        self._chunker = chunker or SentenceChunker(min_clause_chars=SPEECH_CLAUSE_CHARS)
        self._chunks: asyncio.Queue[str | Written | None] = asyncio.Queue()
        self._words = getattr(tts, "open_stream", None) is not None
        """Whether the queue carries the written text too (for a streamed connection)."""
        self._owner: asyncio.Task[object] | None = None
        self._llm_done = False

    async def __call__(self) -> None:
        """Stream the response; a provider error is recorded on the run, not raised."""
        run = self.run
        with tracing.step("voice.response", {"patchbay.turn_id": run.turn_id}) as span:
            await self._stream()
            tracing.fail(span, run.error_code)
        if not run.outputs:
            # Neither words nor calls (an empty reply, or the LLM failed first): the response
            # still reports its message, empty, so the client has an item to close.
            self._open_message()

    async def _stream(self) -> None:
        if not self.run.audio:
            await self._llm_loop()
            return
        # The LLM loop runs in this task (one scheduling hop less before the request goes
        # out); the TaskGroup ties the TTS loop's life to ours: cancelling this call cancels it.
        # When TTS fails, the TTS loop cancels this task to stop the LLM at once; that one
        # cancellation is ours and is absorbed here, any other (barge-in) propagates.
        owner = asyncio.current_task()
        assert owner is not None
        self._owner = owner
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._tts_loop())
                await self._llm_loop()
        except asyncio.CancelledError:
            if self.run.error_stage == "tts" and owner.uncancel() == 0:
                return
            raise

    async def _llm_loop(self) -> None:
        # The routed LLM's plan, attempt and upstream spans hang from this one.
        with tracing.step("voice.llm", {"patchbay.turn_id": self.run.turn_id}) as span:
            await self._llm_turn()
            tracing.fail(span, self.run.error_code if self.run.error_stage == "llm" else None)

    async def _llm_turn(self) -> None:
        run = self.run
        run.latency.mark("llm_request")
        early = self.early
        stream: LLMStream = early.stream() if early else self._llm.stream(run.request, turn_id=run.turn_id)
        events = aiter(stream)
        try:
            async for event in events:
                run.served = stream.served or run.served
                if isinstance(event, TextDelta | RefusalDelta):  # a refusal is said out loud too
                    if event.text:
                        self._text(event.text)
                elif isinstance(event, ToolCallStart):
                    self._call_started(event.index, event.id, event.name)
                elif isinstance(event, ToolCallDelta):
                    self._call_delta(event.index, event.arguments)
                elif isinstance(event, ToolCallDone):
                    self._call_done(event.index, event.call)
                elif isinstance(event, ReasoningArtifactDone):
                    self._reasoning.append(event.artifact)
                elif isinstance(event, UsageUpdate):
                    run.usage = event.usage
        except ProviderError as exc:
            run.error, run.error_stage = exc, "llm"
        finally:
            # Close the upstream stream now (also when cancelled), not when collected.
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
            run.served = stream.served or run.served
            self._llm_done = True
            if run.audio:
                for chunk in self._chunker.flush() if run.error is None else ():
                    self._chunks.put_nowait(chunk)
                self._chunks.put_nowait(_END)

    def _text(self, text: str) -> None:
        run = self.run
        run.latency.mark("llm_first_token")
        run.text += text
        if run.item_id not in run.outputs:
            if not run.text.strip():
                return  # whitespace before a tool call is not a message
            self._open_message()
            text = run.text
        if run.audio:
            if self._words:
                self._chunks.put_nowait(Written(text))
            for chunk in self._chunker.push(text):
                self._chunks.put_nowait(chunk)
        else:
            self._outbox.put(TextOut(run.response_id, run.item_id, text))

    def _open(self, item: Item) -> None:
        run = self.run
        run.outputs[item.id] = item
        previous = self._conversation.add(item)
        self._outbox.put(OutputItemAdded(run.response_id, item, len(run.outputs) - 1))
        self._outbox.put(ItemCreated(item, previous))

    def _open_message(self) -> None:
        run = self.run
        kind: ItemKind = "audio" if run.audio else "text"
        self._open(Item(run.item_id, "assistant", kind, status="in_progress", response_id=run.response_id))

    def _call_started(self, index: int, call_id: str, name: str) -> None:
        run = self.run
        run.latency.mark("llm_first_token")
        item = Item(
            self._ids("item"),
            "assistant",
            "function_call",
            status="in_progress",
            call_id=call_id,
            name=name,
            response_id=run.response_id,
        )
        self._calls[index] = (item.id, call_id)
        self._open(item)

    def _call_delta(self, index: int, fragment: str) -> None:
        if index not in self._calls or not fragment:
            return
        run = self.run
        item_id, call_id = self._calls[index]
        item = run.outputs[item_id]
        run.outputs[item_id] = replace(item, text=item.text + fragment)
        self._outbox.put(
            FunctionCallArgumentsDelta(run.response_id, item_id, call_id, fragment, run.output_index(item_id))
        )

    def _call_done(self, index: int, call: ToolCall) -> None:
        if index not in self._calls:
            self._call_started(index, call.id, call.name)
        run = self.run
        item_id, _ = self._calls[index]
        item = run.outputs[item_id]
        reasoning = Reasoning(artifacts=tuple(self._reasoning))
        item = replace(
            item, text=call.arguments, name=call.name or item.name, status="completed", reasoning=reasoning
        )
        run.outputs[item_id] = item
        self._conversation.replace(item)
        self._outbox.put(OutputItemDone(run.response_id, item, False, item.text, run.output_index(item_id)))

    async def _tts_loop(self) -> None:
        replay: list[str] = []
        ended = False
        try:
            streamed = await self._speak_streamed()
        except StreamFailed as failed:
            replay, ended, streamed = failed.replay, failed.ended, False
        except ProviderError as exc:
            self._tts_failed(exc)
            return
        if not streamed:
            await self._speak_each(replay, ended)

    async def _speak_streamed(self) -> bool:
        """The reply over one streamed connection when the TTS offers one; False when it does
        not (speak per sentence). Raises `StreamFailed` when it broke before any audio."""
        open_stream = getattr(self._tts, "open_stream", None)
        if open_stream is None:
            return False
        run = self.run
        stream: TTSStream | None = await open_stream(voice=run.voice, turn_id=run.turn_id)
        if stream is None:
            return False
        speech = StreamedSpeech(
            run,
            stream,
            self._chunks,
            encoder=self._encoder,
            outbox=self._outbox,
            conversation=self._conversation,
            route=getattr(self._tts, "last_route", None),
        )
        try:
            await speech.speak()
        finally:
            await stream.aclose()  # also on barge-in: the connection closes now, not at GC
        return True

    async def _speak_each(self, replay: list[str], ended: bool) -> None:
        """Per sentence: one TTS segment per chunk (after `replay`, chunks a failed stream had)."""
        run = self.run
        queued: list[str | Written | None] = [*replay] if ended else [*replay, *self._drain()]
        while True:
            chunk = queued.pop(0) if queued else (None if ended else await self._chunks.get())
            if chunk is _END:
                break
            if isinstance(chunk, Written):
                continue  # for a streamed connection; here the chunks are what is spoken
            if run.error is not None:
                return  # the LLM failed: the response is over, say no more
            try:
                with tracing.step(
                    "voice.tts", {"patchbay.turn_id": run.turn_id, "patchbay.characters": len(chunk)}
                ):
                    await self._speak(chunk)
            except ProviderError as exc:
                self._tts_failed(exc)
                return
        if run.error is not None:
            return
        tail = self._encoder.flush()
        if tail:
            self._outbox.put(AudioDelta(run.response_id, run.item_id, tail))

    def _drain(self) -> list[str | Written | None]:
        """What is waiting in the chunk queue now (it may include its end)."""
        items: list[str | Written | None] = []
        while not self._chunks.empty():
            items.append(self._chunks.get_nowait())
        return items

    def _tts_failed(self, exc: ProviderError) -> None:
        run = self.run
        run.error, run.error_stage = exc, "tts"
        if self._owner is not None and not self._llm_done:
            self._owner.cancel()  # nobody will speak what the LLM writes

    async def _speak(self, chunk: str) -> None:
        run, tts = self.run, self._tts
        run.latency.mark("tts_request")
        start_ms = self._encoder.position_ms
        announced = False
        produced = 0
        early = self.early.speech(chunk, run.voice) if self.early else None
        stream = early or tts.synthesize(chunk, voice=run.voice, turn_id=run.turn_id)
        try:
            async for pcm in stream:
                run.latency.mark("tts_first_byte")
                produced += len(pcm)
                audio = self._encoder.encode(pcm)
                if not audio:
                    continue
                if not announced:
                    announced = True
                    self._outbox.put(
                        TranscriptDelta(run.response_id, run.item_id, _joined(run.spoken, chunk))
                    )
                    run.spoken = f"{run.spoken} {chunk}" if run.spoken else chunk
                if self._outbox.put(AudioDelta(run.response_id, run.item_id, audio)):
                    run.latency.mark("first_audio")
        finally:
            # Runs on cancellation too: the engine's stream is closed now, not at GC, and
            # a chunk that was partly spoken is still billed.
            await aclose_quietly(stream)
            if produced:
                served = getattr(tts, "last_served", None) or tts
                run.latency.tts_provider = run.latency.tts_provider or served.name
                run.latency.tts_route = run.latency.tts_route or getattr(tts, "last_route", None)
                run.tally.add(
                    served.name, served.billing_source, len(chunk), produced / (2 * tts.sample_rate)
                )
                self._conversation.add_span(run.item_id, Span(chunk, start_ms, self._encoder.position_ms))


def _joined(spoken: str, chunk: str) -> str:
    """Transcript deltas concatenate to the spoken transcript: chunks are space-separated."""
    return f" {chunk}" if spoken else chunk
