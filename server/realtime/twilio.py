"""Phone calls through Twilio Media Streams: the same voice session as `/v1/realtime`, another wire.

Two routes (docs/voice.md, "Phone calls (Twilio)"): the call's webhook, `POST /v1/twilio/voice`
(`twilio_webhook.py`), whose TwiML connects the call to `GET /v1/twilio/media-stream`, the
WebSocket Twilio opens, served here. Twilio cannot send headers there, so nothing is served
before a `start` message whose `customParameters.token` verifies (a bad one counts against the
address; a locked-out address is closed with 1013, try again later); then the caller's µ-law
8 kHz audio goes to the session as it comes (`twilio_bridge.py`). A stream started with `resume`
begins with the conversation its call's handover carried; a stream that names a `handover` is
handed to the call's next stream at its first quiet moment once its worker drains
(`server.realtime.handover`), and keeps that handover current while the call lasts, so the call
also goes on after its worker dies (`server.realtime.call_checkpoint`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace
from typing import Any

from fastapi import APIRouter, WebSocket

from foundation.db import utcnow
from foundation.metrics import TWILIO_STREAMS_DROPPED, VOICE_DRAIN_CLOSES
from server.accounts import Principal
from server.auth_throttle import client_address, lockout_message
from server.realtime import handover
from server.realtime.auth import Caller, Refused, authenticate
from server.realtime.call_checkpoint import CallCheckpoint
from server.realtime.feed import MessageFeed, Receive, close_socket
from server.realtime.handover import Handover, conversation_of, restore
from server.realtime.opening import SessionRefused, open_session, session_defaults
from server.realtime.twilio_bridge import DROPPED, HANDED_OVER, TwilioBridge, decode_message
from server.realtime.twilio_webhook import HANDOVER, RESUME, STREAM_PARAMETERS, STREAM_PATH
from server.services import Services
from server.ws_drain import draining_of
from voice.audio import ULAW_8K
from voice.config import SessionConfig
from voice.session import VoiceSession

log = logging.getLogger("patchbay.twilio")
router = APIRouter()

START_TIMEOUT_SECONDS = 10.0
# Before a valid `start` the socket is unauthenticated: Twilio sends `connected` and `start`
# (a few hundred bytes), so anything much past that is not Twilio and is closed, instead of
# letting an anonymous socket feed the server megabytes while it waits for the start.
START_MAX_MESSAGES = 32
START_MAX_BYTES = 64 * 1024
"""How long a media stream may stay open without a valid `start`."""


@dataclass(frozen=True, slots=True)
class StreamStart:
    stream_sid: str
    call_sid: str | None
    parameters: dict[str, str]
    encoding: str | None
    sample_rate: int | None


def parse_start(message: dict[str, Any]) -> StreamStart | None:
    """The `start` message's facts; None when it is not a usable `start`."""
    start = message.get("start")
    if message.get("event") != "start" or not isinstance(start, dict):
        return None
    sid = start.get("streamSid") or message.get("streamSid")
    if not isinstance(sid, str) or not sid:
        return None
    custom = start.get("customParameters")
    fmt = start.get("mediaFormat")
    if not isinstance(fmt, dict):
        fmt = {}
    rate = fmt.get("sampleRate")
    return StreamStart(
        stream_sid=sid,
        call_sid=start.get("callSid") if isinstance(start.get("callSid"), str) else None,
        parameters={k: v for k, v in custom.items() if isinstance(v, str)}
        if isinstance(custom, dict)
        else {},
        encoding=fmt.get("encoding") if isinstance(fmt.get("encoding"), str) else None,
        sample_rate=rate if isinstance(rate, int) else None,
    )


async def _await_start(receive: Receive) -> StreamStart | None:
    """Read up to the `start` message (Twilio sends `connected` first); None if the socket
    closes or sends more than `START_MAX_MESSAGES` messages or `START_MAX_BYTES` before it."""
    received = 0
    for _ in range(START_MAX_MESSAGES):
        raw = await receive()
        if raw["type"] == "websocket.disconnect":
            return None
        text, data = raw.get("text"), raw.get("bytes")
        received += len(text) if text is not None else len(data or b"")
        if received > START_MAX_BYTES:
            return None
        message = decode_message(text)
        if message is not None and message.get("event") == "start":
            return parse_start(message)
    return None


@router.websocket(STREAM_PATH)
async def media_stream(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    runtime = services.voice
    await websocket.accept()
    try:
        async with asyncio.timeout(START_TIMEOUT_SECONDS):
            start = await _await_start(websocket.receive)
    except TimeoutError:
        start = None
    caller: Caller | Refused = Refused()
    if start is not None:
        caller = await authenticate(
            services,
            runtime.signer,
            None,
            start.parameters.get("token"),
            address=client_address(websocket.scope),
            surface="twilio",
        )
    if start is None or isinstance(caller, Refused):
        locked = caller.retry_after if isinstance(caller, Refused) else None
        if locked is not None:
            log.warning("twilio media stream refused: address locked out after failed authentication")
            await close_socket(websocket, 1013, lockout_message(locked))
            return
        log.warning("twilio media stream refused: no start message with a valid token")
        await close_socket(websocket, 1008, "a start message with a valid token is required")
        return
    if (start.encoding, start.sample_rate) != ("audio/x-mulaw", 8000):
        log.warning(
            "twilio media stream refused: unsupported media format %.40s/%s",
            start.encoding,
            start.sample_rate,
        )
        await close_socket(websocket, 1003, "only audio/x-mulaw at 8000 Hz is supported")
        return
    defaults = await session_defaults(
        services,
        caller.principal,
        SessionConfig(turn_detection=runtime.turn_detection),
    )
    # The call's own parameters win over the agent's; a phone line speaks G.711 µ-law whatever
    # output format the agent prefers.
    config = replace(
        defaults,
        instructions=start.parameters.get("instructions") or defaults.instructions,
        voice=start.parameters.get("voice") or defaults.voice,
        input_format=ULAW_8K,
        output_format=ULAW_8K,
    )
    resumed = await _take_handover(services, start, caller.principal)
    handover_id, call_sid = start.parameters.get(HANDOVER), start.call_sid
    # Only a call whose TwiML redirects back here (it names a handover) moves: at a quiet moment
    # of a drain, or when its socket drops without Twilio's `stop`. Any other stream is held for
    # the whole drain, as before, and a dropped one ends its call.
    hand_to = (handover_id, call_sid) if handover_id and call_sid else None
    draining = draining_of(websocket.scope) if hand_to is not None else None
    # The call's handover without its conversation, for its checkpoints and its final handover.
    draft = _handover_of(start.parameters, *hand_to, caller) if hand_to is not None else None
    handed_over = False
    checkpoint: CallCheckpoint | None = None
    try:
        opened = open_session(services, runtime, caller, caller.model, config, surface="twilio.session")
        async with opened as session:
            left_out = restore(session, resumed.items) if resumed is not None else 0
            if draft is not None and runtime.checkpoints is not None:
                checkpoint = runtime.checkpoints.open(draft, lambda: conversation_of(session))
            bridge = TwilioBridge(
                session,
                start.stream_sid,
                feed=MessageFeed.of(websocket),
                send_text=websocket.send_text,
                max_frame_bytes=runtime.max_frame_bytes,
                on_conversation=checkpoint.changed if checkpoint is not None else None,
            )
            fields: dict[str, object] = {
                "session": session.context.session_id,
                "org": session.context.org_id,
                "call": start.call_sid,
                "resumed": resumed is not None,
            }
            if left_out:
                fields["items_left_out"] = left_out
            log.info("twilio call connected", extra={"fields": fields})
            ended_by: str | None = None
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(runtime.max_session_seconds):
                        ended_by = await bridge.run(draining)
            finally:
                if checkpoint is not None:
                    await checkpoint.stop()
            if draft is not None:
                handed_over = await _last_word(services, draft, session, ended_by, checkpoint)
    except SessionRefused as exc:
        log.warning("twilio media stream refused: %s", exc)
        await close_socket(websocket, 1008, str(exc)[:120])
        return
    fields["skipped"] = dict(bridge.skipped)
    if handed_over and ended_by == HANDED_OVER:
        VOICE_DRAIN_CLOSES.labels("quiet").inc()
        log.info("twilio call handed over at a quiet moment of the drain", extra={"fields": fields})
    elif handed_over:
        TWILIO_STREAMS_DROPPED.labels("handed_over").inc()
        log.warning(
            "twilio media stream dropped without a stop: handed over for the call's redirect",
            extra={"fields": fields},
        )
    else:
        if ended_by == DROPPED:  # no handover id in its TwiML, or it could not be written
            TWILIO_STREAMS_DROPPED.labels("ended").inc()
        log.info("twilio call ended", extra={"fields": fields})
    await close_socket(websocket, 1000, "")


async def _take_handover(services: Services, start: StreamStart, principal: Principal) -> Handover | None:
    """The handover this stream resumes, if it names one of its call and key (used once)."""
    resume_id = start.parameters.get(RESUME)
    if not resume_id or not start.call_sid:
        return None
    found = await handover.find(services.db, resume_id, start.call_sid, utcnow(), take=True)
    if found is None or (found.principal.key_id, found.principal.org_id) != (
        principal.key_id,
        principal.org_id,
    ):
        log.warning("twilio media stream resumes no handover: the call goes on without its history")
        return None
    return found


def _handover_of(parameters: dict[str, str], handover_id: str, call_sid: str, caller: Caller) -> Handover:
    kept = {name: parameters[name] for name in STREAM_PARAMETERS if parameters.get(name)}
    return Handover(handover_id, call_sid, caller.principal, caller.model, kept, [])


async def _last_word(
    services: Services,
    draft: Handover,
    session: VoiceSession,
    ended_by: str | None,
    checkpoint: CallCheckpoint | None,
) -> bool:
    """The stream's last write on its call's handover row. After a drain's quiet moment or a
    dropped socket, the handover for the call's next stream: True once written; if it cannot
    be, the call ends with this stream, or goes on from its last checkpoint if it has one.
    After an end in order, the checkpoint deleted: nothing for a redirect to resume."""
    if ended_by not in (HANDED_OVER, DROPPED):
        if checkpoint is not None:
            await checkpoint.discard()
        return False
    written = replace(draft, items=conversation_of(session))
    try:
        await handover.save(services.db, written, utcnow())
    except Exception as exc:
        log.error(
            "twilio call handover not written: the redirect resumes the call from its last checkpoint"
            if checkpoint is not None and checkpoint.written
            else "twilio call handover not written: the call ends with this stream",
            extra={"fields": {"call": written.call_sid, "error_type": type(exc).__name__}},
        )
        return False
    return True
