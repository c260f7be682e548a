"""An in-memory `TurnLLM` for voice-session tests: scripted replies, held open on demand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from providers.contract import BillingSource
from providers.errors import ProviderError
from providers.types import ChatRequest, Finish, FinishReason, StreamEvent, TextDelta, Usage, UsageUpdate
from voice.llm import ServedBy


@dataclass
class FakeLLMState:
    requests: list[ChatRequest] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)
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
                    await llm.gate.wait()
                yield TextDelta(delta)
                await asyncio.sleep(0)
            yield UsageUpdate(llm.usage)
            yield Finish(FinishReason.STOP)
        except asyncio.CancelledError:
            llm.state.cancelled += 1
            raise
        finally:
            llm.state.closed += 1


class FakeLLM:
    """Replies with `deltas`; with `hold_after=n` it waits on `gate` before delta n."""

    records_usage = False

    def __init__(
        self,
        deltas: Sequence[str] = ("Sure thing. ", "Your table ", "is booked for two."),
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
