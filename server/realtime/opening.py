"""Opening a voice session for an authenticated caller, whatever the transport.

`/v1/realtime` and the Twilio media stream both go through `open_session`: the key's rate
limit (opening a session counts as one request, as a chat call does), the live-sessions-per-key
limit (across workers and replicas when Redis is configured), the caller's STT and TTS chains
and the routed LLM. The session's slot is handed back when the block ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from foundation.db import new_id
from server.realtime.auth import Caller
from server.realtime.llm import RouterTurnLLM
from server.realtime.runtime import VoiceRuntime
from server.realtime.session_limit import SessionLimitError
from server.services import Services
from voice.config import SessionConfig
from voice.llm import TurnLLM
from voice.session import VoiceSession
from voice.turn import SessionContext

_UNPINNED = frozenset({"", "default", "auto"})


class SessionRefused(Exception):
    """The caller may not open a session now; the message is safe to show (a close reason)."""


def route_model(model: str | None) -> str | None:
    """The route for the LLM. OpenAI's own realtime model names (the SDK insists on one) mean
    "the org's default": we do not serve OpenAI's speech-to-speech models."""
    if model is None or model.strip().lower() in _UNPINNED or "realtime" in model.lower():
        return None
    return model


def _llm(services: Services, runtime: VoiceRuntime, context: SessionContext) -> TurnLLM:
    if runtime.llm is not None:
        return runtime.llm(context)
    if services.gateway is None:
        raise RuntimeError("the routed API is not configured in this process")
    return RouterTurnLLM(services.gateway.router, context)


@contextlib.asynccontextmanager
async def open_session(
    services: Services, runtime: VoiceRuntime, caller: Caller, model: str | None, config: SessionConfig
) -> AsyncIterator[VoiceSession]:
    """A new session for `caller`, or `SessionRefused`; its slot is released on the way out."""
    principal = caller.principal
    gateway = services.gateway
    if gateway is not None and not (await gateway.rate_limiter.hit(principal.key_id)).allowed:
        raise SessionRefused("rate limited")
    session_id = new_id("sess")
    try:
        await runtime.sessions.acquire(principal.key_id, session_id)
    except SessionLimitError as exc:
        raise SessionRefused(str(exc)) from None
    try:
        context = SessionContext(
            org_id=principal.org_id,
            session_id=session_id,
            agent_id=principal.agent_id,
            api_key_id=principal.key_id,
            model=route_model(model),
        )
        stt, tts = await runtime.engines_for(services, principal)
        yield VoiceSession(
            context,
            stt=stt,
            tts=tts,
            llm=_llm(services, runtime, context),
            config=config,
            limits=runtime.limits,
            usage=services.usage,
            stats=runtime.stats,
        )
    finally:
        await runtime.sessions.release(principal.key_id, session_id)
