"""Direct delivery of WebSocket messages (`server.websocket_direct`, `server.realtime.feed`).

A small ASGI app on a real uvicorn reads a socket through `MessageFeed`, once with the protocol
`patchbay serve` runs (messages straight from the protocol to the handler) and once with
uvicorn's own (through ASGI `receive`): both must hand over the same messages in the same
order, including those that arrived before the handler was attached, run the handler with the
app task's context variables, stop on the handler's word or on disconnect, and go back to
`receive` afterwards.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvicorn
import websockets
from websockets.frames import CloseCode

from server.realtime.feed import MessageFeed
from server.serve import WEBSOCKET_PROTOCOL
from server.websocket_direct import DIRECT
from tests.emulators.harness import free_port
from tests.serving import uvicorn_in_loop

CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="none")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Feeding:
    """An app that reads a socket through `MessageFeed` once the test opens `gate`."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.direct: Any = None
        self.handled: list[tuple[str | bytes, str]] = []
        self.ended = asyncio.Event()
        self.accepted = asyncio.Event()

    def handle(self, message: str | bytes) -> bool:
        if message == "boom":
            raise ValueError("the handler failed")
        if message == "stop":
            return True
        self.handled.append((message, CALLER.get()))
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "websocket"
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        self.direct = scope["extensions"].get(DIRECT)
        self.accepted.set()
        await self.gate.wait()
        CALLER.set("the app's task")
        try:
            await MessageFeed(receive, self.direct).run(self.handle)
        except ValueError as exc:
            await send({"type": "websocket.send", "text": f"raised: {exc}"})
            await send({"type": "websocket.close", "code": 1011})
            return
        self.ended.set()
        await send({"type": "websocket.send", "text": "stopped"})
        # After the feed, messages come through `receive` again.
        message = await receive()
        if message["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": f"echo: {message.get('text')}"})
            await send({"type": "websocket.close", "code": 1000})


@pytest.fixture(params=[WEBSOCKET_PROTOCOL, "websockets-sansio"], ids=["direct", "asgi"])
async def served(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Feeding, str, bool]]:
    app = Feeding()
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", log_level="warning", ws=request.param
    )
    async with uvicorn_in_loop(config):
        yield app, f"ws://127.0.0.1:{port}/", request.param == WEBSOCKET_PROTOCOL


async def queued(app: Feeding) -> None:
    """Until the server holds a message the handler has not been given."""
    await asyncio.wait_for(app.accepted.wait(), 10)
    queue = app.direct._protocol.queue
    held = [await asyncio.wait_for(queue.get(), 10)]
    while not queue.empty():
        held.append(queue.get_nowait())
    for message in held:  # back in order; uvicorn reads nothing more until they are taken
        queue.put_nowait(message)


async def test_every_message_in_order_with_the_tasks_context(served: tuple[Feeding, str, bool]) -> None:
    app, url, direct = served
    async with websockets.connect(url) as ws:
        await ws.send("one")
        await ws.send(b"\x00\x01")
        await ws.send("two")
        if direct:
            # The first message waits in uvicorn's queue (it pauses reading after it): attaching
            # the handler must hand it over first, then read the rest.
            await queued(app)
        app.gate.set()
        await ws.send("three")
        await ws.send("stop")
        assert await asyncio.wait_for(ws.recv(), 10) == "stopped"
        await ws.send("after")
        assert await asyncio.wait_for(ws.recv(), 10) == "echo: after"
    assert (app.direct is not None) is direct
    assert app.handled == [
        ("one", "the app's task"),
        (b"\x00\x01", "the app's task"),
        ("two", "the app's task"),
        ("three", "the app's task"),
    ]


async def test_the_handlers_exception_ends_the_feed(served: tuple[Feeding, str, bool]) -> None:
    app, url, _ = served
    app.gate.set()
    async with websockets.connect(url) as ws:
        await ws.send("one")
        await ws.send("boom")
        await ws.send("never handled")
        assert await asyncio.wait_for(ws.recv(), 10) == "raised: the handler failed"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    assert app.handled == [("one", "the app's task")]


async def test_a_disconnect_ends_the_feed(served: tuple[Feeding, str, bool]) -> None:
    app, url, _ = served
    app.gate.set()
    async with websockets.connect(url) as ws:
        await ws.send("one")
    await asyncio.wait_for(app.ended.wait(), 10)
    assert app.handled == [("one", "the app's task")]


async def test_invalid_utf8_in_a_text_frame_closes_the_socket(served: tuple[Feeding, str, bool]) -> None:
    app, url, _ = served
    app.gate.set()
    async with websockets.connect(url) as ws:
        await ws.send("one")
        await ws.send(b"\xff\xfe", text=True)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == CloseCode.INVALID_DATA
    assert app.handled == [("one", "the app's task")]
