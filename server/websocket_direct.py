"""uvicorn's sans-I/O WebSocket protocol, with a socket's messages handed straight to a handler.

Through ASGI every message of a voice socket (fifty a second per caller) is a dict put on an
`asyncio.Queue`, a wake-up of the app's task through four awaits, and a pause and resume of
the socket's reads. A voice handler is synchronous (`RealtimeConnection.handle` never awaits),
so none of that buys anything. This protocol offers the app, under the scope extension
`DIRECT`, a `DirectMessages` that calls the app's handler from `data_received` itself, in
order, for every text or binary message, with the handler task's context variables.

The same extension sends several text messages in one socket write (`send_texts`): a voice
reply's events mostly come in bursts, and through ASGI each was a `send` through every
middleware and a socket write of its own. Everything else stays ASGI: the handshake, the close,
and `websocket.disconnect`, which still arrives through `receive` (so Starlette's socket state
stays right). Messages that arrived before the handler is attached are handed to it first;
after `detach` they queue as before. An app served by another server sees no extension and
reads through `receive` (`server.realtime.feed.MessageFeed` does either).

While a handler is attached, the common frame (a whole, masked, unfragmented text frame under
64 KiB, as every voice client sends) is also read here rather than by websockets' generator
parser, which cost about 5 µs of a frame's ~35. Only whole frames are taken, and only while
websockets' parser waits at a frame boundary with nothing buffered (so it never sees half a
frame); anything else (control frames, binary or fragmented messages, invalid UTF-8, a larger
frame, a compression extension, a closing socket) goes to websockets from that frame on,
exactly as before. If websockets' internals ever differ from what the boundary check expects,
the check fails and every frame takes the websockets path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.http11 import Request
from websockets.protocol import Protocol, State
from websockets.streams import StreamReader

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C extension
    from websockets.utils import apply_mask

DIRECT = "patchbay.direct_messages"
"""The scope extension under which the protocol offers its `DirectMessages`."""

Handler = Callable[[str | bytes], None]
"""Called with each message: `str` for a text frame, `bytes` for a binary one."""

_FIN_TEXT = 0x81
"""First byte of a whole text frame with no extension bits."""
_MASKED = 0x80
_FAST_MAX = 0xFFFF
"""Largest payload read here: a 16-bit extended length (a 20 ms frame is ~1.4 KB)."""
_FRAME_LOOP = Protocol.parse.__code__
_AT_EOF = StreamReader.at_eof.__code__


def payload(message: Any) -> str | bytes:
    """What an ASGI `websocket.receive` message carries: its text, else its bytes."""
    text = message.get("text")
    return text if text is not None else message.get("bytes") or b""


class DirectMessages:
    """One socket's switch between ASGI delivery and a synchronous handler."""

    def __init__(self, protocol: DirectMessageProtocol) -> None:
        self._protocol = protocol

    def attach(self, handler: Handler) -> None:
        """Hand every message to `handler` from now on, starting with any already queued."""
        protocol = self._protocol
        kept: list[Any] = []
        queue = protocol.queue
        while not queue.empty():
            message = queue.get_nowait()
            if message["type"] == "websocket.receive":
                handler(payload(message))
            else:
                kept.append(message)
        for message in kept:
            queue.put_nowait(message)
        protocol.handler = handler
        if protocol.read_paused:
            protocol.read_paused = False
            protocol.transport.resume_reading()

    def detach(self) -> None:
        """Back to ASGI delivery: later messages queue for `receive`."""
        self._protocol.handler = None

    async def send_texts(self, texts: Sequence[bytes]) -> None:
        """Send each of `texts` (UTF-8) as a text message, in order, in one socket write.

        What uvicorn's `send` does for one `websocket.send` message, done here for several at once:
        it waits while the transport's buffer is over its high-water mark, and raises
        `ClientDisconnected` once the client is gone or the socket is closing.
        """
        protocol = self._protocol
        await protocol.writable.wait()
        if protocol.disconnected or protocol.close_sent:
            raise ClientDisconnected()
        conn = protocol.conn
        try:
            for text in texts:
                conn.send_text(text)
        except InvalidState:
            raise ClientDisconnected() from None
        protocol.transport.write(b"".join(conn.data_to_send()))


class DirectMessageProtocol(WebSocketsSansIOProtocol):
    handler: Handler | None = None
    _held = b""
    """The start of a frame read here whose rest has not arrived."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The largest payload read here: websockets' own limits (named by version) under 64 KiB.
        names = ("max_message_size", "max_fragment_size", "max_size")
        caps = [cap for name in names if (cap := getattr(self.conn, name, None)) is not None]
        self._limit = min([_FAST_MAX, *caps])

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][DIRECT] = DirectMessages(self)

    def data_received(self, data: bytes) -> None:
        if self._held:
            data, self._held = self._held + data, b""
        if self.handler is not None and not self.close_sent and self._at_frame_boundary():
            data = self._take_frames(data)
            if not data:
                return
        super().data_received(data)

    def _at_frame_boundary(self) -> bool:
        """Whether websockets' parser holds no bytes and waits for the next frame."""
        conn = self.conn
        if conn.state is not State.OPEN or conn.extensions or conn.reader.buffer:
            return False
        if getattr(conn, "current_size", 0) is not None:  # a fragmented message is open
            return False
        outer: Any = None
        inner: Any = conn.parser
        while inner.gi_yieldfrom is not None:
            outer, inner = inner, inner.gi_yieldfrom
        return inner.gi_code is _AT_EOF and outer is not None and outer.gi_code is _FRAME_LOOP

    def _take_frames(self, data: bytes) -> bytes:
        """Hand over the whole text frames at the start of `data`; what websockets must read."""
        limit, end, size = self._limit, 0, len(data)
        while self.handler is not None:
            start = end
            if size - start < 2:
                break
            if data[start] != _FIN_TEXT or data[start + 1] < _MASKED:
                return data[start:]
            length, mask_at = data[start + 1] & 0x7F, start + 2
            if length == 126:
                if size - start < 4:
                    break
                length, mask_at = (data[start + 2] << 8) | data[start + 3], start + 4
            elif length == 127:
                return data[start:]
            if length > limit:
                return data[start:]  # websockets' path closes with 1009
            end = mask_at + 4 + length
            if end > size:
                end = start
                break
            try:
                text = apply_mask(data[mask_at + 4 : end], data[mask_at : mask_at + 4]).decode()
            except UnicodeDecodeError:
                return data[start:]  # websockets' path closes with 1007
            self.handler(text)
        if self.handler is None:
            return data[end:]  # detached: the rest is for ASGI `receive`
        if end < size:
            self._held = data[end:]
        return b""

    def send_receive_event_to_app(self) -> None:
        handler = self.handler
        if handler is None or self.close_sent:
            super().send_receive_event_to_app()
            return
        frames, self.frames = self.frames, []
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        if self.curr_msg_data_type != "text":
            handler(bytes(data))
            return
        try:
            text = data.decode()
        except UnicodeDecodeError:
            # As uvicorn does: invalid UTF-8 in a text frame closes the socket (1007).
            self.logger.info("invalid UTF-8 in a WebSocket text frame; closing with 1007")
            self.conn.send_close(1007)
            self.handle_parser_exception()
            return
        handler(text)
