"""Opening a voice session for an authenticated caller, whatever the transport.

`/v1/realtime` and the Twilio media stream both go through `open_session`: the key's model
list (`model_refusal`: the session's model, or `default` when the route chooses), its rate
limit (opening a session counts as one request, as a chat call does), the live-sessions-per-key
limit (across workers and replicas when Redis is configured), the caller's STT and TTS chains
and the routed LLM. The session's slot is handed back when the block ends.

Before that, `session_defaults` puts the voice settings of the agent bound to the caller's key
(its voice, instructions, language, output format) in place of the server's defaults. They come
from the org's routing snapshot in memory, not from the database.

Every session of a valid key, refused or not, is one request-log entry (`surface`:
`realtime.session` or `twilio.session`): status 101 once opened (429 when refused), its
duration as latency; its turns are entries of their own (`server.realtime.llm`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from billing.turn_costs import TurnCosts
from foundation.db import new_id
from routing.catalog import Catalog
from routing.errors import NoRouteError
from routing.intents import Intent
from routing.voice_settings import VoiceSettings
from server.accounts import Principal
from server.activity.entry import RequestEntry
from server.key_scope import model_allowed
from server.realtime.auth import Caller
from server.realtime.runtime import VoiceRuntime
from server.realtime.session_limit import SessionLimitError
from server.realtime.session_slots import Close
from server.realtime.session_wire import apply_patch
from server.realtime.wire import SessionPatch
from server.services import Services
from server.v1.errors import ApiError, key_model_not_allowed
from voice.config import SessionConfig
from voice.session import VoiceSession
from voice.turn import SessionContext

_UNPINNED = frozenset({"", "default", "auto"})
SWITCHING_PROTOCOLS = 101
"""A session's status in the request log once its WebSocket is open."""


class SessionRefused(Exception):
    """The caller may not open a session now; the message is safe to show (a close reason)."""


class ModelRefused(SessionRefused):
    """The session's model is not on the key's list; `error` says so in the API's terms."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error


def route_model(model: str | None) -> str | None:
    """The route for the LLM. OpenAI's own realtime model names (the SDK insists on one) mean
    "the org's default": we do not serve OpenAI's speech-to-speech models."""
    if model is None or model.strip().lower() in _UNPINNED or "realtime" in model.lower():
        return None
    return model


def model_refusal(principal: Principal, model: str | None, catalog: Catalog) -> ApiError | None:
    """Why `principal` may not open a session on `model`, or None when it may. A model the route
    chooses (none named, `default`, an OpenAI realtime name) is checked as `default`."""
    chosen = route_model(model)
    if model_allowed(principal.allowed_models, chosen, catalog):
        return None
    assert principal.allowed_models is not None
    return key_model_not_allowed(chosen, principal.allowed_models)


def with_voice_settings(config: SessionConfig, settings: VoiceSettings) -> SessionConfig:
    """`config` with an agent's voice settings over it.

    They go in as the session's first `session.update` would, so the output format names are
    the wire's own and a client's later `session.update` changes them field by field."""
    sent: dict[str, Any] = {"instructions": settings.instructions, "voice": settings.voice}
    sent["output_audio_format"] = settings.output_format
    config = apply_patch(
        config, SessionPatch.model_validate({k: v for k, v in sent.items() if v is not None})
    )
    return replace(config, language=settings.language) if settings.language else config


async def session_defaults(services: Services, principal: Principal, config: SessionConfig) -> SessionConfig:
    """The config a session of `principal` starts with: `config` (the transport's defaults) with
    the voice settings of the agent its key is bound to, if any."""
    if principal.agent_id is None:
        return config
    try:
        agent = await services.gateway.router.agent(principal.org_id, principal.agent_id)
    except NoRouteError:
        # The org has just gone; opening the session reports that in its own way.
        return config
    return with_voice_settings(config, agent.voice_settings) if agent is not None else config


@contextlib.asynccontextmanager
async def open_session(
    services: Services,
    runtime: VoiceRuntime,
    caller: Caller,
    model: str | None,
    config: SessionConfig,
    *,
    surface: str = "realtime.session",
    replaces: str | None = None,
    replaced: Close | None = None,
) -> AsyncIterator[VoiceSession]:
    """A new session for `caller`, or `SessionRefused`; its slot is released on the way out.
    `replaces`: the caller's earlier session of the same key, ended to make room (a reconnection);
    `replaced`: called if a later connection replaces this one (`server.realtime.session_limit`)."""
    log = services.gateway.request_log
    entry = log.begin(surface)
    if entry is None:
        async with _open(services, runtime, caller, model, config, None, replaces, replaced) as session:
            yield session
        return
    principal = caller.principal
    entry.org_id, entry.key_id, entry.agent_id = principal.org_id, principal.key_id, principal.agent_id
    entry.model = model
    try:
        async with _open(services, runtime, caller, model, config, entry, replaces, replaced) as session:
            yield session
        entry.completed = True
    except SessionRefused:
        raise
    except Exception:
        entry.failed, entry.error_code = True, "server_error"
        raise
    finally:
        log.finish(entry)


@contextlib.asynccontextmanager
async def _open(
    services: Services,
    runtime: VoiceRuntime,
    caller: Caller,
    model: str | None,
    config: SessionConfig,
    entry: RequestEntry | None,
    replaces: str | None,
    replaced: Close | None,
) -> AsyncIterator[VoiceSession]:
    principal = caller.principal
    refused = model_refusal(principal, model, services.gateway.catalog)
    if refused is not None:
        raise ModelRefused(refused)
    if not (await services.gateway.rate_limiter.hit(principal.key_id)).allowed:
        _refused(entry, "rate_limit_exceeded")
        raise SessionRefused("rate limited")
    session_id = new_id("sess")
    if entry is not None:
        entry.request_id = session_id
    try:
        await runtime.sessions.acquire(principal.key_id, session_id, replaces=replaces, close=replaced)
    except SessionLimitError as exc:
        _refused(entry, "session_limit_exceeded")
        raise SessionRefused(str(exc)) from None
    if entry is not None:
        entry.status = SWITCHING_PROTOCOLS
    try:
        context = SessionContext(
            org_id=principal.org_id,
            session_id=session_id,
            agent_id=principal.agent_id,
            api_key_id=principal.key_id,
            model=route_model(model),
        )
        costs = TurnCosts()
        stt, tts = await runtime.engines_for(
            principal, request_id=session_id, intent=Intent.VOICE_TURN, costs=costs
        )
        yield VoiceSession(
            context,
            stt=stt,
            tts=tts,
            llm=runtime.llm_for(context, costs=costs),
            config=config,
            limits=runtime.limits,
            usage=services.usage,
            costs=costs,
            stats=runtime.stats,
        )
    finally:
        await runtime.sessions.release(principal.key_id, session_id)


def _refused(entry: RequestEntry | None, code: str) -> None:
    if entry is not None:
        entry.status, entry.error_code = 429, code
