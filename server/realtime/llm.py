"""The voice session's LLM: the same `Router` chat uses, with intent `voice_turn`.

The router resolves the org's chain, falls back before the first token, keeps cooldowns and
writes the `llm` usage segment (with the turn id), so `records_usage` is True. Routing
failures are turned into `ProviderError`s, the only failure the voice pipeline knows.

Each response is one hit on the caller's key in the same rate limiter `/v1` uses (shared
through Redis when configured), taken before any upstream call: a session cannot turn one
admitted connection into unlimited upstream calls. A turn over the limit fails with
`Refused` (`rate_limit_exceeded`); the session goes on and a later turn may pass. A turn the
org's credits cannot cover (the router's hold was refused) fails likewise, with
`insufficient_credits`, before any upstream call; after a grant the next turn runs. A turn
whose every candidate was skipped for a configuration reason (a capability the model lacks, a
failed gate, the plan) fails with `Refused` under the code `/v1` would answer.

Each response is also one `realtime.turn` entry in the request log (`server.activity`): its
route trace, serving connection, tokens and the status `/v1` would have answered with.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

from billing.preflight import InsufficientCreditsError
from billing.turn_costs import TurnCosts
from providers.contract import ErrorClass
from providers.errors import ProviderError, Refused, insufficient_credits
from providers.types import ChatRequest, StreamEvent
from routing.errors import AllAttemptsFailedError, RoutingError
from routing.intents import Intent
from routing.router import CallContext, Router
from server.activity.entry import RequestEntry
from server.activity.recorder import RequestLog, follow
from server.v1.errors import from_exception
from server.v1.ratelimit import RateLimiter
from voice.llm import ServedBy
from voice.turn import SessionContext


class _RoutedStream:
    def __init__(
        self,
        router: Router,
        ctx: CallContext,
        request: ChatRequest,
        model: str | None,
        limiter: RateLimiter | None,
        log: RequestLog | None = None,
    ) -> None:
        self._router = router
        self._limiter = limiter
        self._log = log
        self._ctx = ctx
        self._request = request
        self._model = model
        self.served: ServedBy | None = None

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._events()

    def _begin(self) -> RequestEntry | None:
        entry = self._log.begin("realtime.turn", request_id=self._ctx.request_id) if self._log else None
        if entry is not None:
            ctx = self._ctx
            entry.org_id, entry.key_id, entry.agent_id = ctx.org_id, ctx.api_key_id, ctx.agent_id
            entry.turn_id, entry.model, entry.prompt = ctx.turn_id, self._model, self._request
        return entry

    async def _events(self) -> AsyncIterator[StreamEvent]:
        entry = self._begin()
        try:
            # Closing this generator (a barge-in) closes the routed one, and so the upstream, at once.
            async with contextlib.aclosing(self._routed(entry)) as events:
                async for event in events:
                    yield event
            if entry is not None:
                entry.completed = True
        finally:
            if entry is not None and self._log is not None:
                self._log.finish(entry)

    async def _routed(self, entry: RequestEntry | None) -> AsyncGenerator[StreamEvent, None]:
        key_id = self._ctx.api_key_id
        if self._limiter is not None and key_id is not None:
            decision = await self._limiter.hit(key_id)
            if not decision.allowed:
                _refused(entry, 429, "rate_limit_exceeded")
                raise Refused(
                    ErrorClass.RATE_LIMIT,
                    f"rate limit exceeded for this API key; retry after {decision.retry_after:.1f} s",
                    code="rate_limit_exceeded",
                    error_type="rate_limit_error",
                    status=429,
                    retry_after=decision.retry_after,
                )
        try:
            call = await self._router.stream(self._ctx, self._request, self._model)
        except InsufficientCreditsError as exc:
            _failed(entry, exc)
            raise insufficient_credits(str(exc), code=exc.code) from None
        except RoutingError as exc:
            _failed(entry, exc)
            raise ProviderError(ErrorClass.NOT_FOUND, str(exc), provider="router") from None
        events = follow(entry, call, aiter(call)) if entry is not None else aiter(call)
        try:
            async for event in events:
                if entry is not None and entry.status == 0:
                    entry.status = 200
                if self.served is None and call.served is not None:
                    conn = call.served.connection
                    self.served = ServedBy(
                        provider=conn.provider.value,
                        model=call.served.model,
                        billing_source=conn.billing_source,
                        profile_id=conn.profile_id,
                        connection_id=conn.connection_id,
                    )
                yield event
        except (AllAttemptsFailedError, ProviderError) as exc:
            _failed(entry, exc)
            if isinstance(exc, ProviderError):
                raise
            refused = turn_refusal(exc)
            if refused is not None:
                raise refused from None
            last = exc.last_error
            raise ProviderError(
                last.error_class if last is not None else ErrorClass.SERVER_ERROR,
                "no LLM attempt served the turn",
                provider="router",
            ) from None
        finally:
            await call.aclose()


def turn_refusal(exc: AllAttemptsFailedError) -> Refused | None:
    """A turn whose candidates were all skipped for a reason someone must fix (a capability, a
    gate, the plan) says so in the session's `error` event, as `/v1` would; None when transient."""
    error = from_exception(exc)
    if error is None or error.status not in (400, 403):
        return None
    return Refused(
        ErrorClass.INVALID_REQUEST,
        error.message,
        code=error.code or error.type,
        error_type=error.type,
        status=error.status,
    )


def _refused(entry: RequestEntry | None, status: int, code: str) -> None:
    if entry is not None:
        entry.status, entry.error_code = status, code


def _failed(entry: RequestEntry | None, exc: Exception) -> None:
    """What `/v1` would have answered; after output (status 200 already) the turn still failed."""
    if entry is None:
        return
    error = from_exception(exc)
    if error is None:
        return
    entry.error_code = error.code or error.type
    entry.failed = entry.status != 0
    if entry.status == 0:
        entry.status = error.status
    if isinstance(exc, ProviderError):
        entry.error_class = exc.error_class.value


class RouterTurnLLM:
    records_usage = True

    def __init__(
        self,
        router: Router,
        context: SessionContext,
        *,
        limiter: RateLimiter | None = None,
        log: RequestLog | None = None,
        costs: TurnCosts | None = None,
    ) -> None:
        self._router = router
        self._context = context
        self._limiter = limiter
        self._log = log
        self._costs = costs

    def stream(self, request: ChatRequest, *, turn_id: str) -> _RoutedStream:
        ctx = self._context
        call = CallContext(
            org_id=ctx.org_id,
            agent_id=ctx.agent_id,
            api_key_id=ctx.api_key_id,
            request_id=ctx.session_id,
            turn_id=turn_id,
            intent=Intent.VOICE_TURN,
            costs=self._costs,
        )
        return _RoutedStream(self._router, call, request, ctx.model, self._limiter, self._log)
