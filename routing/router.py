"""The routed chat call every surface makes: the HTTP `/v1` API and the voice session alike.

Given who is calling (`CallContext`), the requested `model` string and a normalized
`ChatRequest`, the router takes the org's snapshot from the `Registry` (memory, no database),
asks the billing preflight for a hold, runs the `Executor` (resolution, fallback before first
output, cooldowns, trace) and, when the call ends, records one `llm` usage segment with the
billing source of the connection that actually served it and settles the hold.

It knows nothing of HTTP or audio: surfaces translate their wire format to `ChatRequest` and
the events back.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from billing.preflight import Hold, Preflight, PreflightRequest
from billing.prices import estimate_input_tokens, estimate_usage, output_chars
from billing.turn_costs import TurnCosts
from billing.usage import Segment, SegmentStatus, UsageSegment
from providers.contract import BillingSource, Capability
from providers.errors import ProviderError
from providers.types import ChatRequest, ChatResponse, StreamEvent, TextDelta, Usage, UsageUpdate
from routing.catalog import price_for
from routing.errors import AllAttemptsFailedError, NoRouteError
from routing.executor import Executor, RoutedStream
from routing.intents import Intent, request_needs
from routing.model import AgentRouting, OrgRouting
from routing.registry import OrgEntry, Registry, UnknownOrgError
from routing.resolver import PlannedAttempt, Resolver, RouteRequest
from routing.trace import AttemptTrace


class UsageSink(Protocol):
    def record(self, item: UsageSegment) -> None: ...


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who is calling and how the usage record is tied together; no prompt, no key."""

    org_id: str
    agent_id: str | None = None
    """The agent bound to the caller's API key (an id; the router maps it to the agent's name)."""
    api_key_id: str | None = None
    request_id: str | None = None
    turn_id: str | None = None
    intent: Intent | None = None
    """None: inferred from the request (vision, structured, tools, else chat)."""
    costs: TurnCosts | None = None
    """Where each settled segment's charge is also reported, under `turn_id` (a voice session's
    `response.done`, an `/v1/audio` response's header); None: nowhere else."""


def infer_intent(request: ChatRequest, needs: frozenset[Capability] | None = None) -> Intent:
    """The most specific text intent the request's content implies; matrices fall back to `chat`.
    `needs`: its `request_needs`, when the caller has them already."""
    if Capability.VISION in (request_needs(request) if needs is None else needs):
        return Intent.VISION
    if request.response_format is not None:
        return Intent.STRUCTURED
    if request.tools:
        return Intent.TOOLS
    return Intent.CHAT


@dataclass(frozen=True, slots=True)
class RoutedResult:
    response: ChatResponse
    served: PlannedAttempt
    trace: AttemptTrace
    cost: int = 0
    """What the org was charged for it, in micro-USD (settled before this is returned)."""

    @property
    def billing_source(self) -> BillingSource:
        return self.served.billing_source


class RoutedCall:
    """The events of one routed streaming call. Iterate it once, and close it (`aclose`) if you stop early.

    `served` names the winning attempt as soon as its first output is released, so a surface
    that reads the first event before answering can put the served provider in its headers.
    """

    def __init__(
        self,
        router: Router,
        ctx: CallContext,
        entry: OrgEntry,
        route: RouteRequest,
        request: ChatRequest,
        hold: Hold,
    ) -> None:
        self._router = router
        self._ctx = ctx
        self._route = route
        self._hold = hold
        self._request = request
        self._stream: RoutedStream = router.executor.stream(entry.routing, route, request)
        self._events: AsyncIterator[StreamEvent] | None = None
        self._started = time.perf_counter()
        self.usage: Usage | None = None
        self.cost: int | None = None
        """What the org was charged, in micro-USD: set once the call has ended and settled."""

    @property
    def trace(self) -> AttemptTrace:
        return self._stream.trace

    @property
    def served(self) -> PlannedAttempt | None:
        return self._stream.served

    @property
    def intent(self) -> Intent:
        return self._route.intent

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        if self._events is None:
            self._events = self._run()
        return self._events

    async def __anext__(self) -> StreamEvent:
        return await self.__aiter__().__anext__()

    async def aclose(self) -> None:
        """Stop the call: closes the upstream stream and records the segment as cancelled.
        A call closed before it was iterated releases its hold and records nothing."""
        if self._events is None:
            self._events = _closed()
            await self._hold.release()
            return
        if hasattr(self._events, "aclose"):
            await self._events.aclose()

    async def _run(self) -> AsyncIterator[StreamEvent]:
        status = SegmentStatus.CANCELLED
        stream = self._stream
        events: AsyncGenerator[StreamEvent, None] | None = None
        arrived = 0
        try:
            # The runner's events directly (`RoutedStream.open`): no generator in between.
            events = await stream.open()
            async for event in events:
                if type(event) is TextDelta:  # most events: counted without a call
                    arrived += len(event.text)
                elif isinstance(event, UsageUpdate):
                    self.usage = event.usage
                else:
                    arrived += output_chars(event)
                yield event
            status = SegmentStatus.OK
        except (ProviderError, AllAttemptsFailedError):
            status = SegmentStatus.FAILED
            raise
        finally:
            # Close the runner's generator now, not when it is collected: that closes the
            # upstream. Then the trace is logged and the plan span ended, as iterating would.
            try:
                if events is not None:
                    await events.aclose()
            finally:
                stream.finish(opened=events is not None)
            if self.usage is None and self.served is not None:
                # No usage from the provider (cancelled, failed, or never sent): charge what arrived.
                self.usage = estimate_usage(self._request, arrived)
            self.cost = await self._router._finish(
                self._ctx, self._route.intent, self.served, self.usage, status, self._started, self._hold
            )


async def _closed() -> AsyncIterator[StreamEvent]:
    return
    yield  # an async generator that ends at once


class Router:
    def __init__(
        self,
        *,
        registry: Registry,
        resolver: Resolver,
        executor: Executor,
        usage: UsageSink,
        preflight: Preflight,
    ) -> None:
        self.registry = registry
        self.resolver = resolver
        self.executor = executor
        self.usage = usage
        self.preflight = preflight

    async def org(self, org_id: str) -> OrgRouting:
        return (await self.entry(org_id)).routing

    async def agent(self, org_id: str, agent_id: str | None) -> AgentRouting | None:
        """The agent an API key is bound to (by id), from the org's snapshot; None without one."""
        if agent_id is None:
            return None
        entry = await self.entry(org_id)
        name = entry.agent_names.get(agent_id)
        return entry.routing.agents.get(name) if name is not None else None

    async def entry(self, org_id: str) -> OrgEntry:
        try:
            return await self.registry.get(org_id)
        except UnknownOrgError:
            raise NoRouteError("the organisation of this key no longer exists") from None

    async def _prepare(
        self, ctx: CallContext, request: ChatRequest, model: str | None
    ) -> tuple[OrgEntry, RouteRequest, Hold]:
        entry = await self.entry(ctx.org_id)
        needs = request_needs(request)
        intent = ctx.intent or infer_intent(request, needs)
        agent = entry.agent_names.get(ctx.agent_id) if ctx.agent_id else None
        route = RouteRequest(intent=intent, model=model, agent=agent, needs=needs)
        # Resolve before holding credits: an unknown model is a 404 whatever the balance.
        choice = self.resolver.select(entry.routing, route)
        offers = self.resolver.offers(entry.routing, choice.chain)
        hold = await self.preflight.hold(
            PreflightRequest(
                org_id=ctx.org_id,
                tier=entry.routing.tier,
                segment=Segment.LLM.value,
                intent=intent.value,
                requested_model=model,
                max_output_tokens=request.max_output_tokens,
                offers=tuple((source, price_for(info)) for source, info in offers),
                input_tokens_estimate=estimate_input_tokens(request),
                request_id=ctx.request_id or ctx.turn_id,
                api_key_id=ctx.api_key_id,
                enforce=entry.routing.flag("billing_enforcement"),
            )
        )
        return entry, route, hold

    async def stream(self, ctx: CallContext, request: ChatRequest, model: str | None) -> RoutedCall:
        """Start a streaming call. Routing errors that need no upstream call raise here
        (`NoRouteError`, `ModelNotAllowedError`, `InsufficientCreditsError`); upstream failures
        before any output raise `AllAttemptsFailedError` from the first `__anext__`."""
        entry, route, hold = await self._prepare(ctx, request, model)
        return RoutedCall(self, ctx, entry, route, request, hold)

    async def complete(self, ctx: CallContext, request: ChatRequest, model: str | None) -> RoutedResult:
        entry, route, hold = await self._prepare(ctx, request, model)
        started = time.perf_counter()
        try:
            routed = await self.executor.complete(entry.routing, route, request)
        except AllAttemptsFailedError:
            await hold.release()
            raise
        cost = await self._finish(
            ctx, route.intent, routed.attempt, routed.response.usage, SegmentStatus.OK, started, hold
        )
        return RoutedResult(response=routed.response, served=routed.attempt, trace=routed.trace, cost=cost)

    async def _finish(
        self,
        ctx: CallContext,
        intent: Intent,
        served: PlannedAttempt | None,
        usage: Usage | None,
        status: SegmentStatus,
        started: float,
        hold: Hold,
    ) -> int:
        return await self.account(
            ctx, Segment.LLM, intent, served, status, started, hold, tokens=usage or Usage()
        )

    async def account(
        self,
        ctx: CallContext,
        segment: Segment,
        intent: Intent,
        served: PlannedAttempt | None,
        status: SegmentStatus,
        started: float,
        hold: Hold,
        *,
        tokens: Usage | None = None,
        audio_seconds: float = 0.0,
        characters: int = 0,
    ) -> int:
        """The end of any segment: one usage record billed to the connection that served it,
        and the hold settled; with nothing served, the hold is released and nothing recorded.
        Returns what the org was charged (micro-USD), also reported to `ctx.costs`."""
        if served is None:
            await hold.release()
            return 0
        conn = served.connection
        used = tokens or Usage()
        latency_ms = (time.perf_counter() - started) * 1000
        seconds = round(audio_seconds, 3)
        charged = 0
        try:
            charged = await hold.settle(
                conn.billing_source,
                used,
                price=price_for(served.info),
                audio_seconds=seconds,
                characters=characters,
            )
        finally:
            # Settled first, so the record carries the charge; recorded even if settling failed.
            self.usage.record(
                UsageSegment(
                    org_id=ctx.org_id,
                    segment=segment,
                    provider=conn.provider.value,
                    billing_source=conn.billing_source,
                    model=served.model,
                    profile_id=conn.profile_id,
                    connection_id=conn.connection_id or None,
                    agent_id=ctx.agent_id,
                    api_key_id=ctx.api_key_id,
                    request_id=ctx.request_id,
                    turn_id=ctx.turn_id,
                    intent=intent.value,
                    status=status,
                    tokens=used,
                    audio_seconds=seconds,
                    characters=characters,
                    latency_ms=latency_ms,
                    cost_micro_usd=charged,
                )
            )
        if ctx.costs is not None:
            ctx.costs.add(ctx.turn_id, segment.value, charged, source=conn.billing_source.value)
        return charged
