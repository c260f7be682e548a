"""`GET /v1/realtime` (WebSocket) and `POST /v1/realtime/client_secrets` (browser tokens).

The WebSocket authenticates before accepting (a bad key gets HTTP 403 from the handshake, an
address locked out after repeated failures HTTP 429 with `retry-after`; an expired key, an
expired browser token (`token_expired`), or a model outside the key's list, gets the socket accepted, one `error` event saying why, and a
close with 1008, since a refused handshake carries no reason), builds the caller's voice
session (STT and TTS chains from the org's connections, the routed
LLM) and hands the socket to `RealtimeConnection`. A request with `OpenAI-Beta: realtime=v1`
gets the beta event names and session shape. An org whose `voice` feature flag is off gets
the socket accepted, one `error` event with code `feature_disabled`, and a close with 1008.

A reconnecting client may name its earlier session, `replaces=<session id>` (the browser SDK
does): that session, if it is still live under the same key (its socket lost without the
server noticing yet), is ended and its slot given to the new one, so a key at its session limit
does not refuse the reconnection (`server.realtime.session_limit`).

A client that carries its conversation into a new session when its socket closes (the browser
SDK) connects with `resumable=1`: when its worker drains (a rolling update, a reload), its
session is closed with 1012 at the first quiet moment (nobody speaking, no reply being made or
still playing) instead of being held for up to the whole drain, and it reconnects to a worker
that stays (`RealtimeConnection`, docs/operations.md, "Stopping and rolling updates").
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import orjson
from fastapi import APIRouter, Depends, Request, WebSocket
from fastapi.responses import JSONResponse

from foundation.metrics import VOICE_DRAIN_CLOSES
from server.admin.auth import require_admin
from server.auth_throttle import client_address, lockout_message
from server.errors import with_request_id
from server.realtime.auth import Caller, Refused, TokenExpired, identify, locked_response
from server.realtime.connection import RealtimeConnection
from server.realtime.feed import MessageFeed, close_socket, texts_sender
from server.realtime.opening import (
    ModelRefused,
    SessionRefused,
    model_refusal,
    open_session,
    session_defaults,
)
from server.realtime.session_wire import session_json
from server.services import Services
from server.v1.auth import Expired, bearer_token
from server.v1.errors import ApiError, expired_key
from server.ws_drain import SERVICE_RESTART, draining_of
from voice.config import SessionConfig

log = logging.getLogger("patchbay.realtime")
router = APIRouter()


@router.websocket("/v1/realtime")
async def realtime(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    runtime = services.voice
    query = websocket.query_params
    caller = await identify(
        services,
        runtime.signer,
        websocket.headers.get("authorization", "").encode("latin-1"),
        query.get("token"),
        address=client_address(websocket.scope),
        surface="realtime",
    )
    if isinstance(caller, Refused):
        await _refuse(websocket, caller)
        return
    if isinstance(caller, Expired):
        await refuse(websocket, expired_key(caller.expires_at))
        return
    if isinstance(caller, TokenExpired):
        await refuse(websocket, expired_token(caller.expires_at))
        return
    if not await voice_enabled(services, caller.principal.org_id):
        await refuse(websocket, VOICE_OFF)
        return
    requested = query.get("model") or caller.model
    config = await session_defaults(
        services,
        caller.principal,
        SessionConfig(turn_detection=runtime.turn_detection),
    )
    replaced = asyncio.Event()
    try:
        async with open_session(
            services,
            runtime,
            caller,
            requested,
            config,
            replaces=_session_id(query.get("replaces")),
            replaced=replaced.set,
        ) as session:
            beta = "realtime=v1" in websocket.headers.get("openai-beta", "")
            await websocket.accept()
            connection = RealtimeConnection(
                session,
                feed=MessageFeed.of(websocket),
                send_texts=texts_sender(websocket),
                model=requested or "default",
                beta=beta,
                max_frame_bytes=runtime.max_frame_bytes,
                max_session_seconds=runtime.max_session_seconds,
                default_silence_ms=runtime.default_silence_ms,
                draining=draining_of(websocket.scope) if query.get("resumable") == "1" else None,
                replaced=replaced,
            )
            fields: dict[str, object] = {"session": session.context.session_id, "org": session.context.org_id}
            log.info("realtime session opened", extra={"fields": fields})
            await connection.run()
    except ModelRefused as exc:
        await refuse(websocket, exc.error)
        return
    except SessionRefused as exc:
        await websocket.close(code=1008, reason=str(exc)[:120])
        return
    fields["errors"] = connection.errors
    if connection.ended_by is not None:
        fields["ended_by"] = connection.ended_by
    code, reason = 1000, ""
    if connection.ended_by == "handed_over":
        VOICE_DRAIN_CLOSES.labels("quiet").inc()
        log.info("realtime session handed over at a quiet moment of the drain", extra={"fields": fields})
        code, reason = SERVICE_RESTART, HANDOVER_REASON
    else:
        log.info("realtime session closed", extra={"fields": fields})
        if connection.ended_by == "replaced":
            reason = REPLACED_REASON
    await close_socket(websocket, code, reason)


HANDOVER_REASON = "server restarting: reconnect to resume"
REPLACED_REASON = "replaced by a newer session of this client"


def _session_id(value: str | None) -> str | None:
    """The `replaces` query parameter, if it can be a session id."""
    return value if value and len(value) <= 64 and value.isascii() else None


VOICE_OFF = ApiError(
    403,
    "invalid_request_error",
    "realtime voice is switched off for this organisation by the `voice` feature flag; "
    "ask the server's operator to turn it on (docs/flags.md)",
    code="feature_disabled",
)


async def voice_enabled(services: Services, org_id: str) -> bool:
    """The org's `voice` flag, from its in-memory snapshot (loaded once, not per session)."""
    entry = await services.gateway.registry.get(org_id)
    return entry.routing.flag("voice")


async def _refuse(websocket: WebSocket, refused: Refused) -> None:
    """Refuse the handshake: 403, or 429 with `retry-after` for a locked-out address when the
    server can send a handshake response of our choosing (uvicorn can)."""
    if refused.retry_after is None:
        await websocket.close(code=1008, reason="invalid or missing API key")
    elif "websocket.http.response" in (websocket.scope.get("extensions") or {}):
        await websocket.send_denial_response(locked_response(refused.retry_after))
    else:
        await websocket.close(code=1008, reason=lockout_message(refused.retry_after))


async def refuse(websocket: WebSocket, error: ApiError) -> None:
    """Refuse a connection saying why: accept, send the realtime wire's `error` event, close 1008."""
    await websocket.accept()
    problem = {"type": error.type, "code": error.code, "message": error.message, "param": error.param}
    event = {"type": "error", "event_id": "event_refused", "error": {**problem, "event_id": None}}
    await websocket.send_text(orjson.dumps(event).decode())
    await websocket.close(code=1008, reason=error.code or "refused")


def expired_token(expires_at: int) -> ApiError:
    when = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    message = (
        f"this realtime token expired at {when}; tokens open a session only within "
        "PATCHBAY_VOICE_TOKEN_TTL_SECONDS of minting: mint a fresh one with POST /v1/realtime/client_secrets"
    )
    return ApiError(401, "invalid_request_error", message, code="token_expired", param="token")


def error_response(error: ApiError) -> JSONResponse:
    problem = {"type": error.type, "code": error.code, "message": error.message, "param": error.param}
    return JSONResponse({"error": with_request_id(problem)}, status_code=error.status)


async def _mint(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    runtime = services.voice
    # A key only: a token cannot mint another token.
    authorization = request.headers.get("authorization", "").encode("latin-1")
    caller = await identify(
        services,
        runtime.signer,
        authorization,
        None,
        address=client_address(request.scope),
        surface="realtime",
    )
    if isinstance(caller, Refused) and caller.retry_after is not None:
        return locked_response(caller.retry_after)
    if isinstance(caller, Expired):
        return error_response(expired_key(caller.expires_at))
    if not isinstance(caller, Caller) or bearer_token(authorization) is None:
        return JSONResponse(
            {
                "error": with_request_id(
                    {
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                        "message": "invalid or missing API key",
                    }
                )
            },
            status_code=401,
        )
    body: dict[str, object] = {}
    if request.headers.get("content-length", "0") != "0":
        try:
            parsed = await request.json()
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            return JSONResponse(
                {
                    "error": with_request_id(
                        {
                            "type": "invalid_request_error",
                            "code": "invalid_json",
                            "message": "body must be a JSON object",
                        }
                    )
                },
                status_code=400,
            )
        body = parsed
    session = body.get("session") if isinstance(body.get("session"), dict) else body
    model = (
        session.get("model") if isinstance(session, dict) and isinstance(session.get("model"), str) else None
    )
    refused = model_refusal(caller.principal, model, services.gateway.catalog)
    if refused is not None:
        return error_response(refused)
    if not await voice_enabled(services, caller.principal.org_id):
        return error_response(VOICE_OFF)
    value, expires_at = runtime.signer.mint(caller.principal, model=model)
    config = await session_defaults(services, caller.principal, SessionConfig())
    described = session_json("pending", str(model or "default"), config, beta=False)
    return JSONResponse(
        {
            "value": value,
            "expires_at": expires_at,
            "session": described,
            "client_secret": {"value": value, "expires_at": expires_at},
        }
    )


@router.get("/admin/voice/metrics", dependencies=[Depends(require_admin)])
async def voice_metrics(request: Request) -> dict[str, object]:
    """Live sessions and recent turns' latency percentiles (v2v, server-added, per-provider TTFB)."""
    services: Services = request.app.state.services
    runtime = services.voice
    return {"live_sessions": runtime.sessions.total, "latency": runtime.stats.snapshot()}


@router.post("/v1/realtime/client_secrets")
async def client_secrets(request: Request) -> JSONResponse:
    """Mint a short-lived token (OpenAI's GA path); connect with `/v1/realtime?token=`."""
    return await _mint(request)


@router.post("/v1/realtime/sessions")
async def sessions(request: Request) -> JSONResponse:
    """The beta path of the same thing: the token is in `client_secret.value`."""
    return await _mint(request)
