"""Chat as a modality of the attempt runner: how one planned chat attempt is opened.

For each planned attempt the executor builds an `Endpoint` from the connection (credential
from the injected `credentials`, adapter by wire protocol from `adapters`, the base URL
checked by `guard`) and lets `routing.runner.AttemptRunner` do the rest: fallback before the
first output (`providers.types.OUTPUT_EVENTS`), same-candidate retries, cooldowns and the
trace. The trace is written to the log (`patchbay.routing`, no prompts) when the request
ends: at INFO unless the first candidate served without a retry (then at DEBUG).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from foundation import tracing
from providers.adapters.base import ChatAdapter, Endpoint
from providers.contract import PRESETS, WireProtocol
from providers.credentials import Credential
from providers.types import OUTPUT_EVENTS, ChatRequest, ChatResponse, StreamEvent
from routing.cooldown_store import CooldownStore
from routing.errors import BaseUrlRefusedError
from routing.model import ConnectionView, OrgRouting
from routing.resolver import Plan, PlannedAttempt, Resolver, RouteRequest
from routing.runner import AttemptRunner, Attempts, Open, RetryPolicy, Run, WallClock, skipped
from routing.trace import AttemptTrace, Outcome, TraceEntry

log = logging.getLogger("patchbay.routing")

Credentials = Callable[[ConnectionView], Credential]

__all__ = ["EndpointGuard", "Executor", "RetryPolicy", "RoutedResponse", "RoutedStream"]


class EndpointGuard(Protocol):
    async def __call__(self, connection: ConnectionView) -> None:
        """Raise `BaseUrlRefusedError` when the connection's base URL may not be used now."""
        ...


@dataclass(frozen=True, slots=True)
class RoutedResponse:
    response: ChatResponse
    attempt: PlannedAttempt
    trace: AttemptTrace


class RoutedStream:
    """The events of one routed request, to iterate once; `trace` fills in as it runs and
    `served` names the winning attempt once output starts."""

    def __init__(
        self, executor: Executor, org: OrgRouting, route: RouteRequest, request: ChatRequest
    ) -> None:
        self._executor = executor
        self.org = org
        self.route = route
        self.request = request
        self.run = Run(AttemptTrace(intent=route.intent.value))

    @property
    def trace(self) -> AttemptTrace:
        return self.run.trace

    @property
    def served(self) -> PlannedAttempt | None:
        return self.run.served

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._executor._run_stream(self)

    async def open(self) -> AsyncGenerator[StreamEvent, None]:
        """The attempt runner's events themselves, for a caller that iterates them directly
        (one generator fewer for every event than iterating this object). The caller closes
        them and then calls `finish`, whatever happened, exactly as iterating this object does."""
        return await self._executor._open_stream(self)

    def finish(self, *, opened: bool) -> None:
        """The routed request is over: its trace is logged (when the plan was made, `opened`)
        and its plan span ended."""
        try:
            if opened:
                log_trace(self.org, self.trace)
        finally:
            _end_plan_span(self.run.span, self.trace)


def _is_output(event: StreamEvent) -> bool:
    return isinstance(event, OUTPUT_EVENTS)


def _always(_: object) -> bool:
    return True


class Executor:
    def __init__(
        self,
        *,
        resolver: Resolver,
        store: CooldownStore,
        credentials: Credentials,
        adapters: Mapping[WireProtocol, ChatAdapter],
        clock: WallClock | None = None,
        retry: RetryPolicy | None = None,
        guard: EndpointGuard | None = None,
        runner: AttemptRunner | None = None,
    ) -> None:
        self._resolver = resolver
        self.runner = runner or AttemptRunner(store=store, clock=clock, retry=retry)
        self._credentials = credentials
        self._adapters = adapters
        self.guard = guard

    async def plan(self, org: OrgRouting, route: RouteRequest) -> Plan:
        """Resolve with one batched read of the candidate profiles' states."""
        choice = self._resolver.select(org, route)
        states = await self.runner.store.get_many(org.org_id, self._resolver.profiles_for(org, choice.chain))
        return self._resolver.plan(org, route, states, self.runner.clock.time(), choice)

    def stream(self, org: OrgRouting, route: RouteRequest, request: ChatRequest) -> RoutedStream:
        return RoutedStream(self, org, route, request)

    async def endpoint(self, attempt: PlannedAttempt) -> tuple[ChatAdapter, Endpoint] | TraceEntry:
        """The adapter and endpoint for an attempt, or the trace entry saying why it cannot be made."""
        conn = attempt.connection
        preset = PRESETS[conn.provider]
        adapter = self._adapters.get(preset.protocol)
        if adapter is None:
            return skipped(attempt, f"no_adapter:{preset.protocol.value}")
        credential = await admit(self.guard, self._credentials, attempt)
        if isinstance(credential, TraceEntry):
            return credential
        endpoint = Endpoint(
            preset=preset,
            base_url=conn.base_url or preset.base_url,
            credential=credential,
            extra_headers=preset.extra_headers,
            label=conn.profile_id,
        )
        return adapter, endpoint

    def _streaming(self, request: ChatRequest) -> Attempts[StreamEvent]:
        async def prepare(attempt: PlannedAttempt) -> Open[StreamEvent] | TraceEntry:
            ready = await self.endpoint(attempt)
            if isinstance(ready, TraceEntry):
                return ready
            adapter, endpoint = ready
            asked = replace(request, model=attempt.model)
            return lambda: adapter.stream(asked, endpoint)

        return Attempts(prepare=prepare, is_output=_is_output)

    async def _open_stream(self, routed: RoutedStream) -> AsyncGenerator[StreamEvent, None]:
        routed.run.span = _plan_span(routed.route) if tracing.recording() else None
        plan = await self.plan(routed.org, routed.route)
        return self.runner.run(plan, routed.run, self._streaming(routed.request))

    async def _run_stream(self, routed: RoutedStream) -> AsyncGenerator[StreamEvent, None]:
        events: AsyncGenerator[StreamEvent, None] | None = None
        try:
            events = await routed.open()
            async for event in events:
                yield event
        finally:
            # Also when the caller stops reading early: close the upstream stream now (the
            # provider stops generating) and log the trace exactly once.
            try:
                if events is not None:
                    await events.aclose()
            finally:
                routed.finish(opened=events is not None)

    async def complete(self, org: OrgRouting, route: RouteRequest, request: ChatRequest) -> RoutedResponse:
        """Non-streaming: any failure before the response moves on, by the same rules as `stream`."""

        async def prepare(attempt: PlannedAttempt) -> Open[ChatResponse] | TraceEntry:
            ready = await self.endpoint(attempt)
            if isinstance(ready, TraceEntry):
                return ready
            adapter, endpoint = ready
            asked = replace(request, model=attempt.model)

            async def one() -> AsyncIterator[ChatResponse]:
                yield await adapter.complete(asked, endpoint)

            return one

        run = Run(AttemptTrace(intent=route.intent.value))
        run.span = _plan_span(route) if tracing.recording() else None
        try:
            plan = await self.plan(org, route)
            async with contextlib.aclosing(
                self.runner.run(plan, run, Attempts(prepare, _always))
            ) as responses:
                async for response in responses:
                    assert run.served is not None
                    return RoutedResponse(response=response, attempt=run.served, trace=run.trace)
        finally:
            log_trace(org, run.trace)
            _end_plan_span(run.span, run.trace)
        raise AssertionError("a served attempt yields its response")


async def admit(
    guard: EndpointGuard | None, credentials: Credentials, attempt: PlannedAttempt
) -> Credential | TraceEntry:
    """What every upstream attempt (chat or speech) passes before it is built: its base URL
    may be used now, and its credential can be read. Else the `failed:guard:*` or
    `failed:credential` entry saying why not."""
    conn = attempt.connection
    if guard is not None and conn.base_url:
        try:
            await guard(conn)
        except BaseUrlRefusedError as exc:
            return skipped(attempt, f"guard:{exc.reason}", Outcome.FAILED)
    try:
        return credentials(conn)
    except Exception as exc:
        # One unreadable secret must not take the whole chain down; the type is enough to debug.
        log.warning(
            "credential unavailable",
            extra={"fields": {"profile": conn.profile_id, "error_type": type(exc).__name__}},
        )
        return skipped(attempt, "credential", Outcome.FAILED)


def _plan_span(route: RouteRequest) -> tracing.Span | None:
    """The routing plan of one request: resolving the candidates and running its attempts."""
    return tracing.start("routing.plan", attributes={"patchbay.intent": route.intent.value})


def _end_plan_span(span: tracing.Span | None, trace: AttemptTrace) -> None:
    if not tracing.recorded(span):
        return
    entries = trace.entries
    attributes: dict[str, str | int] = {
        "patchbay.candidates": len(entries),
        "patchbay.attempts": sum(1 for e in entries if e.outcome is not Outcome.SKIPPED),
        "patchbay.skipped": sum(1 for e in entries if e.outcome is Outcome.SKIPPED),
    }
    served = trace.served
    if served is not None:
        attributes["patchbay.served"] = served.target
    tracing.end(span, error=None if served is not None else "all_attempts_failed", attributes=attributes)


def log_trace(org: OrgRouting, trace: AttemptTrace) -> None:
    """One line per request: INFO when anything was skipped, retried, fell back or failed;
    DEBUG for the common case (the first candidate served at once), which the access log
    already covers, so a busy gateway does not pay for two lines per request."""
    entries = trace.entries
    clean = len(entries) == 1 and entries[0].outcome is Outcome.SERVED and not entries[0].retries
    level = logging.DEBUG if clean else logging.INFO
    if not log.isEnabledFor(level):
        return
    log.log(
        level,
        "routed request served" if trace.served else "routed request failed",
        extra={"fields": {"org_id": org.org_id, "routing": trace.to_dict()}},
    )
