"""Run a suite's cases against one (connection, model) through the provider layer.

The call path is the routed one: `Executor.endpoint` admits the attempt (base-URL guard,
credential) and picks the adapter by wire protocol, and the adapter makes the call, so a case
exercises exactly what a routed request would. No cooldown is recorded: a conformance run
measures a model, it does not judge a profile's health. Each case runs `runs` times; every
call is bounded by the case's token budget (`max_output_tokens`) and the adapter's timeouts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from billing.prices import cost
from providers.adapters.base import ChatAdapter, Endpoint
from providers.errors import ProviderError, StructuredOutputError
from providers.types import (
    OUTPUT_EVENTS,
    ChatRequest,
    Finish,
    FinishReason,
    RefusalDelta,
    TextDelta,
    ToolCall,
    ToolCallDone,
    Usage,
    UsageUpdate,
)
from routing.conformance import checks
from routing.conformance.checks import Observation
from routing.conformance.scoring import Outcome
from routing.conformance.suite import Case, Suite
from routing.executor import Executor
from routing.resolver import PlannedAttempt
from routing.trace import TraceEntry

Progress = Callable[[str], None]
Clock = Callable[[], float]


class UnreachableError(Exception):
    """The attempt could not be made at all (no adapter, refused base URL, unreadable key)."""

    def __init__(self, entry: TraceEntry) -> None:
        super().__init__(entry.label)
        self.entry = entry


def cases_for(suite: Suite, attempt: PlannedAttempt) -> tuple[Case, ...]:
    """The suite's cases this model is asked: those needing an input it does not claim are left out."""
    claimed = attempt.info.capabilities
    return tuple(c for c in suite.cases if c.needs is None or c.needs in claimed)


async def run_model(
    executor: Executor,
    attempt: PlannedAttempt,
    suite: Suite,
    *,
    runs: int = 1,
    progress: Progress | None = None,
    clock: Clock = time.perf_counter,
) -> list[Outcome]:
    """Every case of `suite` (for this model) `runs` times; raises `UnreachableError`."""
    ready = await executor.endpoint(attempt)
    if isinstance(ready, TraceEntry):
        raise UnreachableError(ready)
    adapter, endpoint = ready
    outcomes: list[Outcome] = []
    for n in range(runs):
        for case in cases_for(suite, attempt):
            request = replace(case.request, model=attempt.model, max_output_tokens=case.budget)
            obs = await observe(adapter, endpoint, request, stream=case.stream, clock=clock)
            failure = _judge(case, request, obs)
            price = attempt.info.price
            outcomes.append(
                Outcome(case.id, case.capability, obs, failure, cost(price, tokens=obs.usage) if price else 0)
            )
            if progress is not None:
                mark = "ok" if failure is None else f"FAIL {failure}"
                progress(
                    f"{attempt.connection.profile_id}/{attempt.model} run {n + 1}/{runs} {case.id}: {mark}"
                )
    return outcomes


def _judge(case: Case, request: ChatRequest, obs: Observation) -> str | None:
    if case.check is checks.refusal_classified:
        return case.check(request, obs)
    return checks.common(request, obs, case.budget) or case.check(request, obs)


async def observe(
    adapter: ChatAdapter, endpoint: Endpoint, request: ChatRequest, *, stream: bool, clock: Clock
) -> Observation:
    """One call, reassembled into an `Observation` (a typed failure becomes its error class)."""
    started = clock()
    try:
        if not stream:
            response = await adapter.complete(request, endpoint)
            return Observation(
                text=response.text,
                tool_calls=response.tool_calls,
                refusal=response.refusal,
                finish=response.finish_reason,
                usage=response.usage,
                total_ms=(clock() - started) * 1000,
            )
        return await _stream(adapter, endpoint, request, started, clock)
    except StructuredOutputError:
        return Observation(invalid_output=True, total_ms=(clock() - started) * 1000)
    except ProviderError as exc:
        return Observation(error=exc.error_class, total_ms=(clock() - started) * 1000)


async def _stream(
    adapter: ChatAdapter, endpoint: Endpoint, request: ChatRequest, started: float, clock: Clock
) -> Observation:
    text: list[str] = []
    refusal: list[str] = []
    calls: list[ToolCall] = []
    usage = Usage()
    finish: FinishReason | None = None
    first: float | None = None
    async for event in adapter.stream(request, endpoint):
        if first is None and isinstance(event, OUTPUT_EVENTS):
            first = clock()
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, RefusalDelta):
            refusal.append(event.text)
        elif isinstance(event, ToolCallDone):
            calls.append(event.call)
        elif isinstance(event, UsageUpdate):
            usage = event.usage
        elif isinstance(event, Finish):
            finish = event.reason
    return Observation(
        text="".join(text),
        tool_calls=tuple(calls),
        refusal="".join(refusal) or None,
        finish=finish,
        usage=usage,
        ttft_ms=(first - started) * 1000 if first is not None else None,
        total_ms=(clock() - started) * 1000,
    )
