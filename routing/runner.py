"""The one attempt runner: every segment of every modality (llm, stt, tts) goes through it.

A modality hands the runner a resolved `Plan` and an `Attempts` value saying how to open one
planned attempt (adapter or engine, endpoint, credential: its own business) and which of its
events count as output. The runner owns everything else, the same way for chat tokens, a
transcript or audio chunks (rules documented in docs/routing.md):
- skipped plan items go to the trace as they are;
- fallback to the next candidate happens only before the first output event reaches the
  caller; after that a failure is re-raised (a listener already hears that voice, a client
  already reads those tokens);
- a retryable failure is retried on the same candidate within `RetryPolicy`; a longer
  retry-after moves on at once and becomes the cooldown;
- an attempt that gives no output within `first_output_timeout` fails as a `timeout`;
- context length, content filter and invalid request stop the plan: another model must not
  answer instead;
- failures are classified by the contract's error policy and recorded as cooldowns once per
  candidate after its last retry (shared through Redis when configured); a success resets
  the profile. The built-in engines are the floor of every speech chain and never cool down.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Generic, Protocol, TypeVar

from foundation import tracing
from providers.contract import ErrorClass
from providers.errors import ProviderError
from routing import metrics
from routing.cooldown import Failure, affects_profile
from routing.cooldown_store import CooldownStore
from routing.errors import AllAttemptsFailedError
from routing.resolver import Plan, PlannedAttempt
from routing.trace import AttemptTrace, Outcome, TraceEntry

E = TypeVar("E")

Open = Callable[[], AsyncIterator[E]]
"""Starts one try of a prepared attempt; called again for a same-candidate retry."""


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


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 1
    max_wait: float = 1.0
    backoff: float = 0.25

    def wait_before_retry(self, error: ProviderError, retries_done: int) -> float | None:
        """Seconds to wait before retrying the same candidate, or None to move on. A first
        failure of a connection the upstream closed before replying is retried at once, even
        with no retries allowed: that is a kept connection closed by its idle timeout as the
        request went out, not an upstream in trouble, and the retry opens a new one."""
        if not error.retryable or error.pool_exhausted:
            return None
        if error.closed_before_reply and retries_done == 0:
            return 0.0
        if retries_done >= self.max_retries:
            return None
        wait = error.retry_after if error.retry_after is not None else self.backoff * 2**retries_done
        return wait if wait <= self.max_wait else None


_NO_DEADLINE = contextlib.nullcontext()

NO_RETRY = RetryPolicy(max_retries=0)
"""For speech: a slow or failing engine hands over to the next one at once (a kept connection
it closed before replying is still replaced once, at once: the engine is not failing)."""


@dataclass(frozen=True, slots=True)
class Attempts(Generic[E]):
    """What a modality tells the runner."""

    prepare: Callable[[PlannedAttempt], Awaitable[Open[E] | TraceEntry]]
    """The attempt ready to open, or the trace entry saying why it cannot be made (no
    adapter, a refused base URL, an unreadable credential)."""
    is_output: Callable[[E], bool]
    """Whether an event is output the caller sees; fallback stops at the first one."""
    first_output_timeout: float | None = None
    retry: RetryPolicy | None = None
    """None: the runner's own policy."""


@dataclass(slots=True)
class Run:
    """One segment's run, readable while it goes: `trace` fills in, `served` names the
    attempt whose output the caller got (set just before that output is released)."""

    trace: AttemptTrace
    served: PlannedAttempt | None = None
    span: tracing.Span | None = None
    """The tracing span the attempt spans hang from (the routing plan's), when tracing is on."""


class AttemptRunner:
    def __init__(
        self, *, store: CooldownStore, clock: WallClock | None = None, retry: RetryPolicy | None = None
    ) -> None:
        self.store = store
        self.clock = clock or SystemWallClock()
        self.retry = retry or RetryPolicy()

    async def run(self, plan: Plan, run: Run, attempts: Attempts[E]) -> AsyncGenerator[E, None]:
        """The events of the first attempt that serves; raises `AllAttemptsFailedError` when none does.

        Close the generator when stopping early: that closes the upstream stream at once."""
        trace = run.trace
        trace.source = plan.source
        retry = attempts.retry or self.retry
        last_error: ProviderError | None = None
        stopped = False
        for item in plan.items:
            if isinstance(item, TraceEntry):
                _add_skip(trace, item)
                continue
            prepared = await attempts.prepare(item)
            if isinstance(prepared, TraceEntry):
                _add_skip(trace, prepared)
                continue
            retries = 0
            while True:
                started_at = time.perf_counter()
                pending: list[E] = []
                started = False
                upstream = prepared()
                span = _attempt_span(run, item, retries) if tracing.recording(run.span) else None
                error: str | None = None
                try:
                    seconds = attempts.first_output_timeout
                    deadline = asyncio.timeout(seconds) if seconds is not None else None
                    # Current only up to the first output (no yield in between): the upstream
                    # call's span hangs from the attempt's.
                    active = tracing.activate(span) if span is not None else None
                    try:
                        async with deadline or _NO_DEADLINE:
                            async for event in upstream:
                                pending.append(event)
                                if attempts.is_output(event):
                                    started = True
                                    break
                    except TimeoutError:
                        if deadline is None or not deadline.expired():
                            raise
                        raise _no_output(item, attempts.first_output_timeout) from None
                    finally:
                        if active is not None:
                            tracing.deactivate(active)
                    await self._served(run, item, retries, started_at)
                    for buffered in pending:
                        yield buffered
                    pending.clear()
                    if started:
                        async for event in upstream:
                            yield event
                except ProviderError as err:
                    error = err.error_class.value
                    if started:
                        await self._failed_after_output(trace, item, err)
                        raise
                    last_error = err
                    wait = retry.wait_before_retry(err, retries)
                    if wait is not None:
                        retries += 1
                        if wait > 0:
                            await self.clock.sleep(wait)
                        continue
                    await self._failed(trace, item, err, retries=retries, started_at=started_at)
                    stopped = not err.fallback_eligible
                    break
                finally:
                    await _close(upstream)
                    if span is not None:  # tracing off: no call at all
                        tracing.end(span, error=error)
                return
            if stopped:
                break
        raise AllAttemptsFailedError(trace, last_error, stopped=stopped or plan.strict)

    async def _served(self, run: Run, attempt: PlannedAttempt, retries: int, started_at: float) -> None:
        run.served = attempt
        metrics.attempt(attempt, "served")
        run.trace.add(_entry(attempt, Outcome.SERVED, "", retries=retries, started_at=started_at))
        conn = attempt.connection
        if conn.cools_down:
            await self.store.record_success(conn.org_id, conn.profile_id, attempt.model, self.clock.time())

    async def _record_failure(self, attempt: PlannedAttempt, error: ProviderError) -> None:
        conn = attempt.connection
        if conn.cools_down and affects_profile(error.error_class) and not error.pool_exhausted:
            failure = Failure(error.error_class, attempt.model, error.retry_after)
            now = self.clock.time()
            state = await self.store.record_failure(conn.org_id, conn.profile_id, failure, now)
            metrics.blocked(state, attempt, error.error_class, now)

    async def _failed(
        self,
        trace: AttemptTrace,
        attempt: PlannedAttempt,
        error: ProviderError,
        *,
        retries: int,
        started_at: float,
    ) -> None:
        metrics.attempt(attempt, "failed", error.error_class)
        if error.fallback_eligible:
            metrics.fallback(error.error_class)
        await self._record_failure(attempt, error)
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

    async def failed_late(self, run: Run, attempt: PlannedAttempt, error: ProviderError) -> None:
        """An attempt that was served (a streamed connection opened) and failed afterwards:
        its cooldown is recorded and its trace entry becomes the failure."""
        await self._failed_after_output(run.trace, attempt, error)

    async def _failed_after_output(
        self, trace: AttemptTrace, attempt: PlannedAttempt, error: ProviderError
    ) -> None:
        served = trace.entries.pop()
        metrics.attempt(attempt, "failed_after_output", error.error_class)
        await self._record_failure(attempt, error)
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


def _add_skip(trace: AttemptTrace, entry: TraceEntry) -> None:
    if entry.outcome is Outcome.SKIPPED:
        metrics.skip(entry.reason)
    trace.add(entry)


def _attempt_span(run: Run, attempt: PlannedAttempt, retries: int) -> tracing.Span | None:
    conn = attempt.connection
    attributes = {
        "patchbay.profile": conn.profile_id,
        "patchbay.provider": conn.provider.value,
        "patchbay.model": attempt.model,
        "patchbay.retry": retries,
    }
    return tracing.start("routing.attempt", parent=run.span, attributes=attributes)


def _no_output(attempt: PlannedAttempt, seconds: float | None) -> ProviderError:
    return ProviderError(
        ErrorClass.TIMEOUT,
        f"{attempt.connection.profile_id} gave no output within {seconds:g}s",
        provider=attempt.connection.profile_id,
        model=attempt.model,
    )


async def _close(stream: AsyncIterator[object]) -> None:
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


def skipped(attempt: PlannedAttempt, reason: str, outcome: Outcome = Outcome.SKIPPED) -> TraceEntry:
    """A trace entry for an attempt a modality could not prepare."""
    return _entry(attempt, outcome, reason)
