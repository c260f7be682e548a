"""The voice session's LLM: the same `Router` chat uses, with intent `voice_turn`.

The router resolves the org's chain, falls back before the first token, keeps cooldowns and
writes the `llm` usage segment (with the turn id), so `records_usage` is True. Routing
failures are turned into `ProviderError`s, the only failure the voice pipeline knows.

Each response is one hit on the caller's key in the same rate limiter `/v1` uses (shared
through Redis when configured), taken before any upstream call: a session cannot turn one
admitted connection into unlimited upstream calls. A turn over the limit fails with
`TurnRefused` (`rate_limit_exceeded`); the session goes on and a later turn may pass.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from billing.preflight import InsufficientCreditsError
from providers.contract import ErrorClass
from providers.errors import ProviderError
from providers.types import ChatRequest, StreamEvent
from routing.errors import AllAttemptsFailedError, RoutingError
from routing.intents import Intent
from routing.router import CallContext, Router
from server.v1.ratelimit import RateLimiter
from voice.llm import ServedBy, TurnRefused
from voice.turn import SessionContext


class _RoutedStream:
    def __init__(
        self,
        router: Router,
        ctx: CallContext,
        request: ChatRequest,
        model: str | None,
        limiter: RateLimiter | None,
    ) -> None:
        self._router = router
        self._limiter = limiter
        self._ctx = ctx
        self._request = request
        self._model = model
        self.served: ServedBy | None = None

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[StreamEvent]:
        key_id = self._ctx.api_key_id
        if self._limiter is not None and key_id is not None:
            decision = await self._limiter.hit(key_id)
            if not decision.allowed:
                raise TurnRefused(
                    ErrorClass.RATE_LIMIT,
                    f"rate limit exceeded for this API key; retry after {decision.retry_after:.1f} s",
                    code="rate_limit_exceeded",
                    error_type="rate_limit_error",
                    retry_after=decision.retry_after,
                )
        try:
            call = await self._router.stream(self._ctx, self._request, self._model)
        except InsufficientCreditsError:
            raise ProviderError(ErrorClass.QUOTA_EXHAUSTED, "not enough credits", provider="router") from None
        except RoutingError as exc:
            raise ProviderError(ErrorClass.NOT_FOUND, str(exc), provider="router") from None
        try:
            async for event in call:
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
        except AllAttemptsFailedError as exc:
            last = exc.last_error
            raise ProviderError(
                last.error_class if last is not None else ErrorClass.SERVER_ERROR,
                "no LLM attempt served the turn",
                provider="router",
            ) from None
        finally:
            await call.aclose()


class RouterTurnLLM:
    records_usage = True

    def __init__(self, router: Router, context: SessionContext, *, limiter: RateLimiter | None = None) -> None:
        self._router = router
        self._context = context
        self._limiter = limiter

    def stream(self, request: ChatRequest, *, turn_id: str) -> _RoutedStream:
        ctx = self._context
        call = CallContext(
            org_id=ctx.org_id,
            agent_id=ctx.agent_id,
            api_key_id=ctx.api_key_id,
            request_id=ctx.session_id,
            turn_id=turn_id,
            intent=Intent.VOICE_TURN,
        )
        return _RoutedStream(self._router, call, request, ctx.model, self._limiter)
