"""A voice socket's incoming messages into a synchronous handler, until the caller leaves or
the session is ended from outside (`until_ended`); its outgoing ones several to a socket
write (`texts_sender`); and its close once the session is over (`close_socket`).

`MessageFeed.run(handle)` calls `handle(message)` for each message, `str` for a text frame and
`bytes` for a binary one, in order, and returns when the client disconnects (with the close
code the server reports) or `handle` returns True (a stop message; None). Under `patchbay serve`
the protocol calls the handler directly as the bytes arrive (`server.websocket_direct`);
elsewhere (Starlette's test client, another ASGI server) it reads through ASGI `receive`. An
exception from `handle` ends `run` with it, either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from starlette.websockets import WebSocketDisconnect

from server.websocket_direct import DIRECT, DirectMessages, payload

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Handle = Callable[[str | bytes], bool | None]
SendTexts = Callable[[list[bytes]], Awaitable[None]]
"""Sends text messages (UTF-8 bytes) in order."""


def texts_sender(websocket: Any) -> SendTexts:
    """How a Starlette `WebSocket` sends several text messages: in one socket write when the
    server offers it (`DirectMessages.send_texts`), else one ASGI `send` each."""
    direct: DirectMessages | None = (websocket.scope.get("extensions") or {}).get(DIRECT)
    if direct is not None:
        return direct.send_texts
    send_text = websocket.send_text

    async def one_by_one(texts: list[bytes]) -> None:
        for text in texts:
            await send_text(text.decode())

    return one_by_one


class MessageFeed:
    def __init__(self, receive: Receive, direct: DirectMessages | None = None) -> None:
        self._receive = receive
        self._direct = direct

    @classmethod
    def of(cls, websocket: Any) -> MessageFeed:
        """The feed of a Starlette `WebSocket`, direct when the server offers it."""
        return cls(websocket.receive, (websocket.scope.get("extensions") or {}).get(DIRECT))

    async def run(self, handle: Handle) -> int | None:
        if self._direct is None:
            return await self._through_asgi(handle)
        return await self._direct_run(self._direct, handle)

    async def _through_asgi(self, handle: Handle) -> int | None:
        while True:
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                return _code(message)
            if handle(payload(message)):
                return None

    async def _direct_run(self, direct: DirectMessages, handle: Handle) -> int | None:
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        run_in_context = contextvars.copy_context().run

        def deliver(message: str | bytes) -> None:
            if ended.done():
                return
            try:
                stop = run_in_context(handle, message)
            except Exception as exc:
                ended.set_exception(exc)
                return
            if stop:
                ended.set_result(None)

        direct.attach(deliver)
        # Only `websocket.disconnect` comes through `receive` now.
        disconnect = asyncio.ensure_future(self._receive())
        try:
            await asyncio.wait((ended, disconnect), return_when=asyncio.FIRST_COMPLETED)
        finally:
            direct.detach()
            disconnect.cancel()
            if ended.done():
                ended.exception()  # retrieved here even if this task is being cancelled
        if ended.done():
            ended.result()
            return None
        return _code(disconnect.result())


def _code(disconnect: Mapping[str, Any]) -> int:
    code: int = disconnect.get("code", 1005)  # ASGI's default: no status received
    return code


async def until_ended(feed: Awaitable[object], enders: Mapping[str, Awaitable[object]]) -> str | None:
    """Await `feed` (the client's messages into the session) unless one of `enders` completes
    first: None when the feed ended (the client left; its failure propagates), else the name of
    the ender that ended the session. Whatever is not done then is cancelled."""
    if not enders:
        await feed
        return None
    reading = asyncio.ensure_future(feed)
    waiting = {asyncio.ensure_future(ender): name for name, ender in enders.items()}
    try:
        done, _ = await asyncio.wait((reading, *waiting), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (reading, *waiting):
            task.cancel()
        await asyncio.gather(reading, *waiting, return_exceptions=True)
    if reading in done:
        reading.result()
        return None
    ended = next(task for task in waiting if task in done)
    ended.result()
    return waiting[ended]


async def close_socket(websocket: Any, code: int, reason: str) -> None:
    """Close a Starlette `WebSocket` the session is done with, unless the client is gone.

    Starlette raises if a handler returns with the socket open. Its view of the client may be
    stale: the feed reads past its `receive`, so a client that left (a caller who hung up and
    closed at once, a dropped connection) can still look connected, and the close then finds
    the socket closing (`WebSocketDisconnect`) or already closed (`RuntimeError`)."""
    if websocket.client_state.name == "CONNECTED":
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(code=code, reason=reason)
