"""Phone calls through Twilio Media Streams: the same voice session as `/v1/realtime`, another wire.

Two routes (docs/voice.md, "Phone calls (Twilio)"):

- `POST /v1/twilio/voice`, the call's webhook. Twilio authenticates with HTTP Basic (the server
  API key as the password, `https://x:pb-...@host/v1/twilio/voice` in the Twilio console) or a
  Bearer key; with PATCHBAY_TWILIO_AUTH_TOKEN set, it must also carry a valid
  `X-Twilio-Signature` (`twilio_signature.py`), or it is refused with 403. A bad signature or
  key counts against the caller's address (server/auth_throttle.py); a locked-out address gets
  429 with `retry-after`. It answers TwiML that connects the call to the media stream, handing over a
  short-lived token (never the key) and the optional `model`, `instructions` and `voice` from the
  webhook's query as stream parameters.
- `GET /v1/twilio/media-stream`, the WebSocket Twilio opens. Twilio cannot send headers there,
  so nothing is served before a `start` message whose `customParameters.token` verifies (a bad
  one counts against the address; a locked-out address is closed with 1013, try again later);
  then the caller's µ-law 8 kHz audio goes to the session as it comes.

The bridge plays the part a realtime client plays for itself: audio goes out as `media`
messages, each followed by a `mark` (`<item id>:<ms sent so far>`) whose echo tells how much of
it the caller has heard, and a reply's last audio by a mark `<item id>:end`, whose echo says the
caller heard all of it.
When the caller speaks over audio not yet heard, the bridge sends `clear` (Twilio drops what
it buffered) and truncates the assistant's item to what was heard, so the next turn's history
holds only what the caller actually heard. Twilio has no error channel: a malformed message
is logged (counted per session, the first of each kind at warning) and skipped.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any
from xml.sax.saxutils import quoteattr

import orjson
from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import Response

from foundation import b64
from server.auth_throttle import client_address, lockout_headers, lockout_message
from server.realtime.auth import Caller, Refused, authenticate
from server.realtime.feed import MessageFeed, Receive
from server.realtime.opening import SessionRefused, open_session, session_defaults
from server.realtime.twilio_signature import twilio_signed
from server.services import Services
from voice.audio import ULAW_8K
from voice.config import SessionConfig
from voice.errors import ClientError
from voice.events import AudioDelta, ErrorEvent, OutputItemDone, SpeechStarted
from voice.session import VoiceSession

log = logging.getLogger("patchbay.twilio")
router = APIRouter()

STREAM_PATH = "/v1/twilio/media-stream"
STREAM_PARAMETERS = ("instructions", "voice")
"""Webhook query fields handed to the media stream as they are (besides the token)."""
END = "end"
"""The last part of a reply's final mark: its echo means the whole reply was heard."""
START_TIMEOUT_SECONDS = 10.0
# Before a valid `start` the socket is unauthenticated: Twilio sends `connected` and `start`
# (a few hundred bytes), so anything much past that is not Twilio and is closed, instead of
# letting an anonymous socket feed the server megabytes while it waits for the start.
START_MAX_MESSAGES = 32
START_MAX_BYTES = 64 * 1024
"""How long a media stream may stay open without a valid `start`."""

SendText = Callable[[str], Awaitable[None]]


# -- the webhook ---------------------------------------------------------------------------


def webhook_key(authorization: str) -> str | None:
    """The API key of an `Authorization` header: Basic (the password, or a lone user) or Bearer."""
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except ValueError:
        # binascii.Error, UnicodeDecodeError, and the ValueError b64decode raises for non-ASCII input.
        return None
    return password or user or None


def stream_url(request: Request, public_url: str | None) -> str:
    """`wss://` (or `ws://` for a plain-HTTP server) URL of the media stream."""
    base = public_url.rstrip("/") if public_url else f"{request.url.scheme}://{request.url.netloc}"
    scheme, _, rest = base.partition("://")
    return ("wss" if scheme == "https" else "ws") + "://" + rest + STREAM_PATH


def connect_twiml(url: str, parameters: dict[str, str]) -> str:
    params = "".join(
        f"<Parameter name={quoteattr(name)} value={quoteattr(value)}/>" for name, value in parameters.items()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Connect><Stream url={quoteattr(url)}>{params}</Stream></Connect></Response>"
    )


@router.post("/v1/twilio/voice")
async def voice_webhook(request: Request) -> Response:
    services: Services = request.app.state.services
    settings = services.settings
    address = client_address(request.scope)
    if settings.twilio_auth_token is not None and not await twilio_signed(
        request, settings.twilio_auth_token.get_secret_value(), settings.public_url
    ):
        locked = await services.auth_throttle.failed(address, surface="twilio")
        if locked is not None:
            return _locked(locked)
        return Response("missing or invalid X-Twilio-Signature", status_code=403, media_type="text/plain")
    runtime = services.voice
    key = webhook_key(request.headers.get("authorization", ""))
    caller = await authenticate(
        services,
        runtime.signer,
        f"Bearer {key}".encode("latin-1", "replace") if key else None,
        None,
        address=address,
        surface="twilio",
    )
    if isinstance(caller, Refused):
        if caller.retry_after is not None:
            return _locked(caller.retry_after)
        return Response(
            "invalid or missing API key",
            status_code=401,
            media_type="text/plain",
            headers={"www-authenticate": 'Basic realm="patchbay"'},
        )
    query = request.query_params
    token, _ = runtime.signer.mint(caller.principal, model=query.get("model") or None)
    parameters = {"token": token} | {name: query[name] for name in STREAM_PARAMETERS if query.get(name)}
    twiml = connect_twiml(stream_url(request, services.settings.public_url), parameters)
    return Response(twiml, media_type="application/xml")


def _locked(retry_after: float) -> Response:
    return Response(
        lockout_message(retry_after),
        status_code=429,
        media_type="text/plain",
        headers=lockout_headers(retry_after),
    )


# -- the media stream ----------------------------------------------------------------------


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


def _decode(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return message if isinstance(message, dict) else None


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
        message = _decode(text)
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
            await _close(websocket, 1013, lockout_message(locked))
            return
        log.warning("twilio media stream refused: no start message with a valid token")
        await _close(websocket, 1008, "a start message with a valid token is required")
        return
    if (start.encoding, start.sample_rate) != ("audio/x-mulaw", 8000):
        log.warning(
            "twilio media stream refused: unsupported media format %.40s/%s",
            start.encoding,
            start.sample_rate,
        )
        await _close(websocket, 1003, "only audio/x-mulaw at 8000 Hz is supported")
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
    try:
        opened = open_session(services, runtime, caller, caller.model, config, surface="twilio.session")
        async with opened as session:
            bridge = TwilioBridge(
                session,
                start.stream_sid,
                feed=MessageFeed.of(websocket),
                send_text=websocket.send_text,
                max_frame_bytes=runtime.max_frame_bytes,
            )
            fields: dict[str, object] = {
                "session": session.context.session_id,
                "org": session.context.org_id,
                "call": start.call_sid,
            }
            log.info("twilio call connected", extra={"fields": fields})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(runtime.max_session_seconds):
                    await bridge.run()
    except SessionRefused as exc:
        log.warning("twilio media stream refused: %s", exc)
        await _close(websocket, 1008, str(exc)[:120])
        return
    fields["skipped"] = dict(bridge.skipped)
    log.info("twilio call ended", extra={"fields": fields})
    await _close(websocket, 1000, "")


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    # Twilio may already have hung up.
    if websocket.client_state.name == "CONNECTED":
        with contextlib.suppress(RuntimeError):
            await websocket.close(code=code, reason=reason)


@dataclass
class _Playback:
    """Audio of one assistant item sent to Twilio, and how much of it the caller has heard."""

    sent_ms: float = 0.0
    heard_ms: float = 0.0


@dataclass
class TwilioBridge:
    """One call: Twilio's messages into the session, the session's events out as Twilio's."""

    session: VoiceSession
    stream_sid: str
    feed: MessageFeed
    send_text: SendText
    max_frame_bytes: int
    skipped: Counter[str] = field(default_factory=Counter)
    """Twilio messages not served, by reason (bad JSON, bad audio, unknown events...)."""
    _playback: dict[str, _Playback] = field(default_factory=dict)

    async def run(self) -> None:
        """Serve until Twilio stops the stream or hangs up."""
        writer = asyncio.ensure_future(self._write())
        try:
            await self.feed.run(self.receive)
        finally:
            await self.session.aclose()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer

    # -- Twilio -> session -------------------------------------------------------------------

    def receive(self, message: str | bytes) -> bool:
        """One of Twilio's messages into the session; True once the stream stops."""
        if len(message) > self.max_frame_bytes:
            self._skip("frame_too_large")
            return False
        decoded = _decode(message) if isinstance(message, str) else None
        if decoded is None:
            self._skip("invalid_json")
            return False
        event = decoded.get("event")
        if event == "media":
            self._media(decoded.get("media"))
        elif event == "mark":
            self._mark(decoded.get("mark"))
        elif event == "stop":
            return True
        elif event not in ("connected", "start", "dtmf"):
            self._skip("unknown_event")
        return False

    def _media(self, media: object) -> None:
        payload = media.get("payload") if isinstance(media, dict) else None
        if not isinstance(payload, str):
            self._skip("invalid_media")
            return
        if isinstance(media, dict) and media.get("track", "inbound") != "inbound":
            return
        try:
            audio = b64.decode(payload)
        except b64.Error:
            self._skip("invalid_base64")
            return
        try:
            self.session.append_audio(audio)
        except ClientError as exc:
            self._skip(exc.code)

    def _mark(self, mark: object) -> None:
        name = mark.get("name") if isinstance(mark, dict) else None
        item_id, _, ms = name.rpartition(":") if isinstance(name, str) else ("", "", "")
        playback = self._playback.get(item_id)
        if playback is None:
            return  # an echo for audio already cleared, or not one of ours
        if ms == END:
            playback.heard_ms = playback.sent_ms
        elif ms.isdigit():
            playback.heard_ms = max(playback.heard_ms, float(ms))

    def _skip(self, reason: str) -> None:
        self.skipped[reason] += 1
        if self.skipped[reason] == 1:
            log.warning(
                "twilio message skipped",
                extra={"fields": {"session": self.session.context.session_id, "reason": reason}},
            )

    # -- session -> Twilio -------------------------------------------------------------------

    async def _write(self) -> None:
        outbox = self.session.outbox
        while True:
            event = await outbox.get()
            if isinstance(event, AudioDelta):
                await self._play(event)
            elif isinstance(event, OutputItemDone) and event.item.id in self._playback:
                await self._send_mark(f"{event.item.id}:{END}")
            elif isinstance(event, SpeechStarted):
                await self._interrupt()
            elif isinstance(event, ErrorEvent):
                log.warning(
                    "voice session error",
                    extra={"fields": {"session": self.session.context.session_id, "code": event.code}},
                )

    async def _play(self, delta: AudioDelta) -> None:
        playback = self._playback.setdefault(delta.item_id, _Playback())
        playback.sent_ms += 1000 * self.session.config.output_format.duration_seconds(delta.audio)
        sid = self.stream_sid
        payload = b64.encode(delta.audio)
        await self.send_text(
            orjson.dumps({"event": "media", "streamSid": sid, "media": {"payload": payload}}).decode()
        )
        await self._send_mark(f"{delta.item_id}:{int(playback.sent_ms)}")

    async def _send_mark(self, name: str) -> None:
        await self.send_text(
            orjson.dumps({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}}).decode()
        )

    async def _interrupt(self) -> None:
        """The caller spoke: drop what Twilio has not played and keep only the heard part in history."""
        unheard = {item: p for item, p in self._playback.items() if p.heard_ms < int(p.sent_ms)}
        self._playback.clear()
        if not unheard:
            return
        await self.send_text(orjson.dumps({"event": "clear", "streamSid": self.stream_sid}).decode())
        for item_id, playback in unheard.items():
            try:
                self.session.truncate(item_id, 0, int(playback.heard_ms))
            except ClientError:
                # The item left the history (its oldest turns are forgotten first).
                log.debug("twilio truncate skipped", extra={"fields": {"item": item_id}})
