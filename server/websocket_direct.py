"""uvicorn's sans-I/O WebSocket protocol, with a socket's messages handed straight to a handler.

Through ASGI every message of a voice socket (fifty a second per caller) is a dict put on an
`asyncio.Queue`, a wake-up of the app's task through four awaits, and a pause and resume of
the socket's reads. A voice handler is synchronous (`RealtimeConnection.handle` never awaits),
so none of that buys anything. This protocol offers the app, under the scope extension
`DIRECT`, a `DirectMessages` that calls the app's handler from `data_received` itself, in
order, for every text or binary message, with the handler task's context variables.

Everything else stays ASGI: the handshake, sends, and `websocket.disconnect`, which still
arrives through `receive` (so Starlette's socket state stays right). Messages that arrived
before the handler is attached are handed to it first; after `detach` they queue as before.
An app served by another server sees no extension and reads through `receive`
(`server.realtime.feed.MessageFeed` does either).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

DIRECT = "patchbay.direct_messages"
"""The scope extension under which the protocol offers its `DirectMessages`."""

Handler = Callable[[str | bytes], None]
"""Called with each message: `str` for a text frame, `bytes` for a binary one."""


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
                text = message.get("text")
                handler(text if text is not None else message.get("bytes") or b"")
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


class DirectMessageProtocol(WebSocketsSansIOProtocol):
    handler: Handler | None = None

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][DIRECT] = DirectMessages(self)

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
