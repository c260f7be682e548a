"""One phone call's media stream bridged to its voice session: Twilio's messages in, the
session's events out as Twilio's.

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
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from foundation import b64
from server.realtime.connection import quiet_in_drain
from server.realtime.feed import MessageFeed, until_ended
from server.ws_drain import SERVICE_RESTART
from voice.errors import ClientError
from voice.events import AudioDelta, ErrorEvent, OutputItemDone, ResponseDone, SpeechStarted
from voice.session import VoiceSession

log = logging.getLogger("patchbay.twilio")

END = "end"
"""The last part of a reply's final mark: its echo means the whole reply was heard."""
HANDED_OVER = "handed_over"
"""What `TwilioBridge.run` returns when the drain's quiet moment ended the call's stream."""
DROPPED = "dropped"
"""What `TwilioBridge.run` returns when the socket closed without Twilio's `stop`, and not by this
server's drain: the connection dropped (a network fault, a proxy restarting) while the call
itself may still be up."""

SendText = Callable[[str], Awaitable[None]]


def decode_message(text: str | None) -> dict[str, Any] | None:
    """A Twilio text message as a JSON object; None for anything else."""
    if text is None:
        return None
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return message if isinstance(message, dict) else None


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
    stopped: bool = field(default=False, init=False)
    """Twilio sent `stop`: the stream ended on its side (the call hung up, or was moved on)."""
    close_code: int | None = field(default=None, init=False)
    """The socket's close code once it closed (None: Twilio stopped the stream first)."""
    on_conversation: Callable[[], None] | None = None
    """Called once a reply is done and once a barge-in cut one short (the call's checkpoint)."""
    _playback: dict[str, _Playback] = field(default_factory=dict)

    async def run(self, draining: asyncio.Event | None = None) -> str | None:
        """Serve until Twilio stops the stream or the drain's deadline closes it (None), or the
        socket closes otherwise (`DROPPED`), or, once `draining` is set, until the call's first
        quiet moment (`HANDED_OVER`)."""
        writer = asyncio.ensure_future(self._write())
        enders = {HANDED_OVER: quiet_in_drain(self.session, draining)} if draining is not None else {}
        try:
            ended_by = await until_ended(self._read(), enders)
            dropped = ended_by is None and not self.stopped and self.close_code != SERVICE_RESTART
            return DROPPED if dropped else ended_by
        finally:
            await self.session.aclose()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer

    # -- Twilio -> session -------------------------------------------------------------------

    async def _read(self) -> None:
        self.close_code = await self.feed.run(self.receive)

    def receive(self, message: str | bytes) -> bool:
        """One of Twilio's messages into the session; True once the stream stops."""
        if len(message) > self.max_frame_bytes:
            self._skip("frame_too_large")
            return False
        decoded = decode_message(message) if isinstance(message, str) else None
        if decoded is None:
            self._skip("invalid_json")
            return False
        event = decoded.get("event")
        if event == "media":
            self._media(decoded.get("media"))
        elif event == "mark":
            self._mark(decoded.get("mark"))
        elif event == "stop":
            self.stopped = True
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
                if await self._interrupt() and self.on_conversation is not None:
                    self.on_conversation()
            elif isinstance(event, ResponseDone) and self.on_conversation is not None:
                self.on_conversation()
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

    async def _interrupt(self) -> bool:
        """The caller spoke: drop what Twilio has not played and keep only the heard part in
        history. False if all of it was heard (nothing changed)."""
        unheard = {item: p for item, p in self._playback.items() if p.heard_ms < int(p.sent_ms)}
        self._playback.clear()
        if not unheard:
            return False
        await self.send_text(orjson.dumps({"event": "clear", "streamSid": self.stream_sid}).decode())
        for item_id, playback in unheard.items():
            try:
                self.session.truncate(item_id, 0, int(playback.heard_ms))
            except ClientError:
                # The item left the history (its oldest turns are forgotten first).
                log.debug("twilio truncate skipped", extra={"fields": {"item": item_id}})
        return True
