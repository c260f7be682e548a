"""Run an attempt plan: call each candidate in turn, fall back only before output, keep score.

For each planned attempt the executor builds an `Endpoint` from the connection (credential
from the injected `credentials`, adapter by wire protocol from `adapters`) and streams. The
rules, documented in docs/routing.md:
- Fallback to the next candidate happens only before the first output event
  (`providers.types.OUTPUT_EVENTS`) reaches the caller; after that a failure is re-raised.
- Same-candidate retries: a retryable failure (rate limit, timeout, overloaded, server,
  network) is retried on the same candidate at most `RetryPolicy.max_retries` times, and only
  when the wait (the provider's retry-after, else exponential backoff) is within
  `RetryPolicy.max_wait`; a longer retry-after moves on at once and becomes the cooldown.
- Context length, content filter and invalid request stop the plan: a smaller or looser
  model must not answer instead.
- Cooldowns are recorded once per candidate after its last retry; a success (the first
  output, or a clean end without output) resets the profile.
The trace is written to the log (`patchbay.routing`, no prompts) when the request ends: at
INFO unless the first candidate served without a retry (then at DEBUG).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from providers.adapters.base import ChatAdapter, Endpoint
from providers.contract import PRESETS, WireProtocol
from providers.credentials import Credential
from providers.errors import ProviderError
from providers.types import OUTPUT_EVENTS, ChatRequest, ChatResponse, StreamEvent
from routing.cooldown import Failure, affects_profile
from routing.cooldown_store import CooldownStore
from routing.errors import AllAttemptsFailedError, BaseUrlRefusedError
from routing.model import ConnectionView, OrgRouting
from routing.resolver import Plan, PlanItem, PlannedAttempt, Resolver, RouteRequest
from routing.trace import AttemptTrace, Outcome, TraceEntry

log = logging.getLogger("patchbay.routing")

Credentials = Callable[[ConnectionView], Credential]


class WallClock(Protocol):
    def time(self) -> float:
        """Epoch seconds; cooldown windows are absolute so replicas agree on them."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemWallClock:
    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class EndpointGuard(Protocol):
    async def __call__(self, connection: ConnectionView) -> None:
        """Raise `BaseUrlRefusedError` when the connection's base URL may not be used now."""
        ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 1
    max_wait: float = 1.0
    backoff: float = 0.25

    def wait_before_retry(self, error: ProviderError, retries_done: int) -> float | None:
        """Seconds to wait before retrying the same candidate, or None to move on."""
        if not error.retryable or retries_done >= self.max_retries:
            return None
        wait = error.retry_after if error.retry_after is not None else self.backoff * 2**retries_done
        return wait if wait <= self.max_wait else None


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
        self.trace = AttemptTrace(intent=route.intent.value)
        self.served: PlannedAttempt | None = None

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._executor._run_stream(self)


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
    ) -> None:
        self._resolver = resolver
        self._store = store
        self._credentials = credentials
        self._adapters = adapters
        self._clock = clock or SystemWallClock()
        self._retry = retry or RetryPolicy()
        self._guard = guard

    async def plan(self, org: OrgRouting, route: RouteRequest) -> Plan:
        """Resolve with one batched read of the candidate profiles' states."""
        choice = self._resolver.select(org, route)
        states = await self._store.get_many(org.org_id, self._resolver.profiles_for(org, choice.chain))
        return self._resolver.plan(org, route, states, self._clock.time(), choice)

    def stream(self, org: OrgRouting, route: RouteRequest, request: ChatRequest) -> RoutedStream:
        return RoutedStream(self, org, route, request)

    async def _ready(
        self, item: PlanItem, trace: AttemptTrace
    ) -> tuple[PlannedAttempt, ChatAdapter, Endpoint] | None:
        """The attempt with its adapter and endpoint, or None once `trace` says why it is skipped."""
        if isinstance(item, TraceEntry):
            trace.add(item)
            return None
        prepared = await self._prepare(item)
        if isinstance(prepared, TraceEntry):
            trace.add(prepared)
            return None
        return item, *prepared

    async def _prepare(self, attempt: PlannedAttempt) -> tuple[ChatAdapter, Endpoint] | TraceEntry:
        """The adapter and endpoint for an attempt, or the trace entry saying why it cannot be made."""
        conn = attempt.connection
        preset = PRESETS[conn.provider]
        adapter = self._adapters.get(preset.protocol)
        if adapter is None:
            return _entry(attempt, Outcome.SKIPPED, f"no_adapter:{preset.protocol.value}")
        if self._guard is not None and conn.base_url:
            try:
                await self._guard(conn)
            except BaseUrlRefusedError as exc:
                return _entry(attempt, Outcome.FAILED, f"guard:{exc.reason}")
        try:
            credential = self._credentials(conn)
        except Exception as exc:
            # One unreadable secret must not take the whole chain down; the type is enough to debug.
            log.warning(
                "credential unavailable",
                extra={"fields": {"profile": conn.profile_id, "error_type": type(exc).__name__}},
            )
            return _entry(attempt, Outcome.FAILED, "credential")
        endpoint = Endpoint(
            preset=preset,
            base_url=conn.base_url or preset.base_url,
            credential=credential,
            extra_headers=preset.extra_headers,
            label=conn.profile_id,
        )
        return adapter, endpoint

    async def _failed(
        self,
        trace: AttemptTrace,
        attempt: PlannedAttempt,
        error: ProviderError,
        *,
        retries: int,
        started_at: float,
    ) -> None:
        if affects_profile(error.error_class):
            failure = Failure(error.error_class, attempt.model, error.retry_after)
            await self._store.record_failure(
                attempt.connection.org_id, attempt.connection.profile_id, failure, self._clock.time()
            )
        trace.add(
            _entry(
                attempt,
                Outcome.FAILED,
                error.error_class.value,
                error=error,
                retries=retries,
                started_at=started_at,
            )
        )

    async def _succeeded(self, attempt: PlannedAttempt) -> None:
        conn = attempt.connection
        await self._store.record_success(conn.org_id, conn.profile_id, attempt.model, self._clock.time())

    async def _run_stream(self, run: RoutedStream) -> AsyncGenerator[StreamEvent, None]:
        events = self._attempts(run)
        try:
            async for event in events:
                yield event
        finally:
            # Also when the caller stops reading early: close the upstream stream now (the
            # provider stops generating) and log the trace exactly once.
            await events.aclose()
            _log(run.org, run.trace)

    async def _attempts(self, run: RoutedStream) -> AsyncGenerator[StreamEvent, None]:
        plan = await self.plan(run.org, run.route)
        trace = run.trace
        trace.source = plan.source
        last_error: ProviderError | None = None
        stopped = False
        for planned in plan.items:
            ready = await self._ready(planned, trace)
            if ready is None:
                continue
            item, adapter, endpoint = ready
            request = replace(run.request, model=item.model)
            retries = 0
            while True:
                started_at = time.perf_counter()
                pending: list[StreamEvent] = []
                started = False
                upstream = adapter.stream(request, endpoint)
                try:
                    async for event in upstream:
                        if started:
                            yield event
                            continue
                        pending.append(event)
                        if isinstance(event, OUTPUT_EVENTS):
                            started = True
                            await self._served(run, item, retries, started_at)
                            for buffered in pending:
                                yield buffered
                            pending.clear()
                except ProviderError as err:
                    if started:
                        await self._failed_after_output(trace, item, err)
                        raise
                    last_error = err
                    wait = self._retry.wait_before_retry(err, retries)
                    if wait is not None:
                        retries += 1
                        await self._clock.sleep(wait)
                        continue
                    await self._failed(trace, item, err, retries=retries, started_at=started_at)
                    stopped = not err.fallback_eligible
                    break
                finally:
                    await _close(upstream)
                if not started:
                    await self._served(run, item, retries, started_at)
                    for buffered in pending:
                        yield buffered
                return
            if stopped:
                break
        raise AllAttemptsFailedError(trace, last_error, stopped=stopped or plan.strict)

    async def _served(
        self, run: RoutedStream, attempt: PlannedAttempt, retries: int, started_at: float
    ) -> None:
        run.served = attempt
        run.trace.add(_entry(attempt, Outcome.SERVED, "", retries=retries, started_at=started_at))
        await self._succeeded(attempt)

    async def _failed_after_output(
        self, trace: AttemptTrace, attempt: PlannedAttempt, error: ProviderError
    ) -> None:
        served = trace.entries.pop()
        if affects_profile(error.error_class):
            failure = Failure(error.error_class, attempt.model, error.retry_after)
            await self._store.record_failure(
                attempt.connection.org_id, attempt.connection.profile_id, failure, self._clock.time()
            )
        trace.add(
            replace(
                served,
                outcome=Outcome.FAILED,
                reason=error.error_class.value,
                error_class=error.error_class,
                status=error.status,
                after_output=True,
            )
        )

    async def complete(self, org: OrgRouting, route: RouteRequest, request: ChatRequest) -> RoutedResponse:
        """Non-streaming: any failure before the response moves on, by the same rules as `stream`."""
        plan = await self.plan(org, route)
        trace = AttemptTrace(intent=route.intent.value, source=plan.source)
        last_error: ProviderError | None = None
        for planned in plan.items:
            ready = await self._ready(planned, trace)
            if ready is None:
                continue
            item, adapter, endpoint = ready
            retries = 0
            while True:
                started_at = time.perf_counter()
                try:
                    response = await adapter.complete(replace(request, model=item.model), endpoint)
                except ProviderError as err:
                    last_error = err
                    wait = self._retry.wait_before_retry(err, retries)
                    if wait is not None:
                        retries += 1
                        await self._clock.sleep(wait)
                        continue
                    await self._failed(trace, item, err, retries=retries, started_at=started_at)
                    if not err.fallback_eligible:
                        _log(org, trace)
                        raise AllAttemptsFailedError(trace, err, stopped=True) from None
                    break
                trace.add(_entry(item, Outcome.SERVED, "", retries=retries, started_at=started_at))
                await self._succeeded(item)
                _log(org, trace)
                return RoutedResponse(response=response, attempt=item, trace=trace)
        _log(org, trace)
        raise AllAttemptsFailedError(trace, last_error, stopped=plan.strict)


async def _close(stream: AsyncIterator[StreamEvent]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


def _entry(
    attempt: PlannedAttempt,
    outcome: Outcome,
    reason: str,
    *,
    error: ProviderError | None = None,
    retries: int = 0,
    started_at: float | None = None,
) -> TraceEntry:
    elapsed = (time.perf_counter() - started_at) * 1000 if started_at is not None else None
    return TraceEntry(
        ref=str(attempt.ref),
        profile_id=attempt.connection.profile_id,
        outcome=outcome,
        reason=reason,
        billing_source=attempt.billing_source,
        error_class=error.error_class if error else None,
        status=error.status if error else None,
        retries=retries,
        elapsed_ms=elapsed,
    )


def _log(org: OrgRouting, trace: AttemptTrace) -> None:
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
