"""One `/v1/realtime` WebSocket: read client events into the session, write its outbox out.

One loop per connection and nothing per frame: each message is parsed and applied to the
session synchronously as it arrives (`MessageFeed`; audio appends never create a task), and a
writer task drains the session's outbox in order, the events queued together in one socket
write. Client mistakes of any kind (bad JSON, unknown types, bad base64, an odd byte count,
oversized or binary frames, values we cannot serve) become `error` events and the socket stays
open. The session ends when the client leaves or its time limit passes, or from outside
(`ended_by`): for a client that resumes in a new session (`resumable=1`, as the browser SDK
connects), at its first quiet moment once its worker drains (`handed_over`: the endpoint then
closes with 1012, and the client reconnects to a worker that is not going away); and when the
client's reconnection replaced it (`replaced`: the client had given this connection up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable

from server.realtime.feed import MessageFeed, SendTexts, until_ended
from server.realtime.serialize import Serializer, WireEvent, item_json
from server.realtime.session_wire import apply_patch, response_config, session_json
from server.realtime.wire import (
    AudioAppend,
    Bare,
    ClientEvent,
    FunctionCallCreate,
    FunctionCallOutputCreate,
    ItemCreate,
    ItemRef,
    ItemTruncate,
    ResponseCancel,
    ResponseCreate,
    SessionUpdate,
    WireError,
    parse_client_event,
)
from voice.errors import ClientError
from voice.events import ErrorEvent, SessionEvent
from voice.history import HistoryError
from voice.session import VoiceSession

log = logging.getLogger("patchbay.realtime")


async def quiet_in_drain(session: VoiceSession, draining: asyncio.Event) -> None:
    """Returns at the session's first quiet moment once its worker drains (`server.ws_drain`)."""
    await draining.wait()
    await session.until_quiet()


class RealtimeConnection:
    def __init__(
        self,
        session: VoiceSession,
        *,
        feed: MessageFeed,
        send_texts: SendTexts,
        model: str,
        beta: bool,
        max_frame_bytes: int,
        max_session_seconds: float,
        default_silence_ms: int = 500,
        draining: asyncio.Event | None = None,
        replaced: asyncio.Event | None = None,
    ) -> None:
        """`draining`: set when the worker starts draining, given only for a client that resumes;
        `replaced`: set when a reconnection of the client replaced this session."""
        self.session = session
        self._feed = feed
        self._send_texts = send_texts
        self._model = model
        self._beta = beta
        self._serializer = Serializer(beta=beta)
        self._max_frame = max_frame_bytes
        self._max_seconds = max_session_seconds
        self._silence_ms = default_silence_ms
        self._draining, self._replaced = draining, replaced
        self.errors = 0
        self.ended_by: str | None = None
        """What ended the session from outside: `handed_over` (a drain's quiet moment; its
        client resumes elsewhere) or `replaced` (the client's reconnection took its place)."""

    async def run(self) -> None:
        """Serve until the client disconnects, the session's time is up or it is ended from outside."""
        self._put_session("session.created")
        writer = asyncio.ensure_future(self._write())
        try:
            async with asyncio.timeout(self._max_seconds):
                await self._serve()
        except TimeoutError:
            self._error(
                "session_expired", "the session reached its maximum duration", type_="invalid_request_error"
            )
        finally:
            await self.session.aclose()
            # Deliver what is queued (a final response.done, the expiry error), then stop.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._flush(), timeout=1.0)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer

    async def _serve(self) -> None:
        enders: dict[str, Awaitable[object]] = {}
        if self._draining is not None:
            enders["handed_over"] = quiet_in_drain(self.session, self._draining)
        if self._replaced is not None:
            enders["replaced"] = self._replaced.wait()
        self.ended_by = await until_ended(self._feed.run(self.receive), enders)

    async def _write(self) -> None:
        outbox, send = self.session.outbox, self._send_texts
        while True:
            if frames := self._frames_from(await outbox.get()):
                await send(frames)

    async def _flush(self) -> None:
        outbox, send = self.session.outbox, self._send_texts
        while (event := outbox.get_nowait()) is not None:
            if frames := self._frames_from(event):
                await send(frames)

    def _frames_from(self, event: SessionEvent) -> list[bytes]:
        """The frames of `event` and of every event queued behind it, for one socket write: a
        reply's first audio, its transcript and its events mostly arrive together."""
        frames, outbox = self._serializer.frames, self.session.outbox
        batch = frames(event)
        while (more := outbox.get_nowait()) is not None:
            batch += frames(more)
        return batch

    def receive(self, message: str | bytes) -> None:
        """One message off the socket: a text frame within the size limit is an event."""
        if not isinstance(message, str):
            self._error("unsupported_frame", "send events as JSON text frames, not binary")
        elif len(message) > self._max_frame:
            self._error(
                "frame_too_large", f"event of {len(message)} bytes exceeds the {self._max_frame}-byte limit"
            )
        else:
            self.handle(message)

    def handle(self, text: str) -> None:
        """Apply one client message; every failure becomes an error event."""
        event_id: str | None = None
        try:
            event = parse_client_event(text)
            event_id = event.event_id
            self._dispatch(event)
        except WireError as exc:
            self._error(
                exc.code, exc.message, param=exc.param, event_id=exc.event_id or event_id, type_=exc.type
            )
        except ClientError as exc:
            self._error(exc.code, exc.message, param=exc.param, event_id=event_id)
        except Exception:
            # A bug must cost one event, not the caller's session.
            log.exception(
                "realtime event failed", extra={"fields": {"session": self.session.context.session_id}}
            )
            self._error(
                "server_error",
                "the server failed to handle this event",
                event_id=event_id,
                type_="server_error",
            )

    def _dispatch(self, event: ClientEvent) -> None:
        session = self.session
        if isinstance(event, AudioAppend):
            session.append_audio(event.audio)
        elif isinstance(event, SessionUpdate):
            try:
                config = apply_patch(session.config, event.session, default_silence_ms=self._silence_ms)
            except ValueError as exc:
                raise WireError("invalid_value", str(exc), param="session") from None
            session.update(config)
            self._put_session("session.updated")
        elif isinstance(event, ItemCreate):
            self._create_item(event)
        elif isinstance(event, FunctionCallCreate):
            call = event.item
            self._check_new_id(call.id)
            session.add_function_call(
                call.name,
                call.arguments,
                call_id=call.call_id,
                previous_item_id=event.previous_item_id,
                item_id=call.id,
            )
        elif isinstance(event, FunctionCallOutputCreate):
            result = event.item
            self._check_new_id(result.id)
            session.add_function_output(
                result.call_id, result.output, previous_item_id=event.previous_item_id, item_id=result.id
            )
        elif isinstance(event, ItemTruncate):
            session.truncate(event.item_id, event.content_index, event.audio_end_ms)
        elif isinstance(event, ItemRef):
            self._item_ref(event)
        elif isinstance(event, ResponseCreate):
            session.create_response(response_config(session.config, event.response))
        elif isinstance(event, ResponseCancel):
            if not session.cancel_response(event.response_id):
                raise ClientError("response_cancel_not_active", "there is no such response in progress")
        elif isinstance(event, Bare):
            self._bare(event)

    def _create_item(self, event: ItemCreate) -> None:
        item = event.item
        if any(
            part.type in ("input_audio", "audio", "output_audio") and part.text is None
            for part in item.content
        ):
            raise ClientError(
                "unsupported_content",
                "audio content in items is not supported: append audio to the input buffer",
                param="item.content",
            )
        text = "".join(part.text or part.transcript or "" for part in item.content)
        self._check_new_id(item.id)
        self.session.add_text(item.role, text, previous_item_id=event.previous_item_id, item_id=item.id)

    def _check_new_id(self, item_id: str | None) -> None:
        if item_id is not None and item_id in self.session.conversation:
            raise ClientError("item_already_exists", f"item {item_id!r} already exists", param="item.id")

    def _item_ref(self, event: ItemRef) -> None:
        if event.type == "conversation.item.delete":
            self.session.delete_item(event.item_id)
            return
        try:
            item = self.session.conversation.get(event.item_id)
        except HistoryError as exc:
            raise ClientError("item_not_found", str(exc), param="item_id") from None
        self.session.outbox.put(
            WireEvent({"type": "conversation.item.retrieved", "item": item_json(item, beta=self._beta)})
        )

    def _bare(self, event: Bare) -> None:
        session = self.session
        if event.type == "input_audio_buffer.commit":
            session.commit()
        elif event.type == "input_audio_buffer.clear":
            session.clear_input()
        elif event.type == "patchbay.ping":
            # Behind whatever the session has queued: the answer shows the writer is alive too.
            session.outbox.put(WireEvent({"type": "patchbay.pong"}))
        else:
            # WebRTC's playback buffer; over a WebSocket the closest meaning is "stop talking".
            session.cancel_response()
            session.outbox.put(WireEvent({"type": "output_audio_buffer.cleared", "response_id": None}))

    def _put_session(self, kind: str) -> None:
        body = session_json(
            self.session.context.session_id, self._model, self.session.config, beta=self._beta
        )
        self.session.outbox.put(WireEvent({"type": kind, "session": body}))

    def _error(
        self,
        code: str,
        message: str,
        *,
        param: str | None = None,
        event_id: str | None = None,
        type_: str = "invalid_request_error",
    ) -> None:
        self.errors += 1
        self.session.outbox.put(ErrorEvent(type_, code, message, param, event_id))
