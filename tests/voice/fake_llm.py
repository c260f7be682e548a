"""An in-memory `TurnLLM` for voice-session tests: scripted replies, held open on demand.

A reply is a sequence of text pieces and stream events (`tool_call` scripts a tool call).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from providers.contract import BillingSource
from providers.errors import ProviderError
from providers.types import (
    ChatRequest,
    Finish,
    FinishReason,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from voice.llm import ServedBy


@dataclass
class FakeLLMState:
    requests: list[ChatRequest] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    holding: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the stream waits on the gate: every piece before it has been consumed."""
    closed: int = 0
    cancelled: int = 0


class _Stream:
    def __init__(self, llm: FakeLLM, request: ChatRequest) -> None:
        self._llm = llm
        self._request = request
        self.served: ServedBy | None = None

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[StreamEvent]:
        llm = self._llm
        llm.state.requests.append(self._request)
        llm.state.started.set()
        try:
            if llm.error is not None:
                raise llm.error
            self.served = llm.served
            for index, delta in enumerate(llm.deltas):
                if llm.hold_after is not None and index == llm.hold_after:
                    llm.state.holding.set()
                    await llm.gate.wait()
                yield TextDelta(delta) if isinstance(delta, str) else delta
                await asyncio.sleep(0)
            yield UsageUpdate(llm.usage)
            calls = any(isinstance(d, ToolCallDone) for d in llm.deltas)
            yield Finish(FinishReason.TOOL_CALLS if calls else FinishReason.STOP)
        except asyncio.CancelledError:
            llm.state.cancelled += 1
            raise
        finally:
            llm.state.closed += 1


def tool_call(call_id: str, name: str, arguments: str, *, index: int = 0, size: int = 7) -> list[StreamEvent]:
    """A tool call as adapters stream it: start, the arguments cut every `size` characters, done."""
    pieces = [arguments[i : i + size] for i in range(0, len(arguments), size)]
    return [
        ToolCallStart(index, call_id, name),
        *(ToolCallDelta(index, piece) for piece in pieces),
        ToolCallDone(index, ToolCall(call_id, name, arguments)),
    ]


class FakeLLM:
    """Replies with `deltas` (set it anew for the next reply); with `hold_after=n` it waits on
    `gate` before delta n."""

    records_usage = False

    def __init__(
        self,
        deltas: Sequence[str | StreamEvent] = ("Sure thing. ", "Your table ", "is booked for two."),
        *,
        usage: Usage = Usage(input_tokens=12, output_tokens=9),
        hold_after: int | None = None,
        error: ProviderError | None = None,
        served: ServedBy = ServedBy("openai", "gpt-test", BillingSource.BYOK, "openai:org", "con_1"),
    ) -> None:
        self.deltas = tuple(deltas)
        self.usage = usage
        self.hold_after = hold_after
        self.error = error
        self.served = served
        self.gate = asyncio.Event()
        self.state = FakeLLMState()
        self.turn_ids: list[str] = []

    def stream(self, request: ChatRequest, *, turn_id: str) -> _Stream:
        self.turn_ids.append(turn_id)
        return _Stream(self, request)
