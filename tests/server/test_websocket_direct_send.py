"""Several text messages in one socket write (`DirectMessages.send_texts`, `texts_sender`).

A small ASGI app on a real uvicorn, with the protocol `patchbay serve` runs, sends through the
protocol's `send_texts`; the socket's transport is wrapped to count its writes. The messages
must reach the client whole and in order from one write, wait while the transport is over its
high-water mark, and raise `ClientDisconnected` once the client is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
import websockets
from uvicorn.protocols.utils import ClientDisconnected

from server.realtime.feed import texts_sender
from server.serve import WEBSOCKET_PROTOCOL
from server.websocket_direct import DIRECT, DirectMessages
from tests.serving import uvicorn_in_loop

Scope = dict[str, Any]


class CountedWrites:
    """The socket's transport, with every `write` recorded."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class Sending:
    """Accepts one socket and hands the test its `DirectMessages`, its counted transport and
    its ASGI `receive`; holds the socket open until `done`."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.done = asyncio.Event()
        self.direct: DirectMessages | None = None
        self.counted: CountedWrites | None = None
        self.receive: Any = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        self.direct = scope["extensions"].get(DIRECT)
        if self.direct is not None:
            protocol = self.direct._protocol
            self.counted = protocol.transport = CountedWrites(protocol.transport)
        self.receive = receive
        self.ready.set()
        await self.done.wait()


@pytest.fixture
async def sending() -> AsyncIterator[tuple[Sending, str]]:
    app = Sending()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="off", log_level="warning", ws=WEBSOCKET_PROTOCOL
    )
    async with uvicorn_in_loop(config):
        yield app, f"ws://127.0.0.1:{config.port}/"
        app.done.set()


async def test_several_messages_go_out_in_one_write_in_order(sending: tuple[Sending, str]) -> None:
    app, url = sending
    async with websockets.connect(url) as ws:
        await asyncio.wait_for(app.ready.wait(), 10)
        assert app.direct is not None and app.counted is not None
        texts = ['{"type":"a"}', '{"type":"b","delta":"é"}', "x" * 70_000]  # 7-, 16- and 64-bit lengths
        await app.direct.send_texts([text.encode() for text in texts])
        assert [await asyncio.wait_for(ws.recv(), 10) for _ in texts] == texts
        assert len(app.counted.writes) == 1


async def test_sending_waits_while_the_transport_is_full(sending: tuple[Sending, str]) -> None:
    app, url = sending
    async with websockets.connect(url) as ws:
        await asyncio.wait_for(app.ready.wait(), 10)
        assert app.direct is not None and app.counted is not None
        writable = app.direct._protocol.writable
        writable.clear()  # as uvicorn's `pause_writing` does over the high-water mark
        sent = asyncio.ensure_future(app.direct.send_texts([b'{"type":"held"}']))
        for _ in range(5):
            await asyncio.sleep(0)  # let the send run as far as it can
        assert not sent.done() and app.counted.writes == []
        writable.set()  # `resume_writing`
        await asyncio.wait_for(sent, 10)
        assert await asyncio.wait_for(ws.recv(), 10) == '{"type":"held"}'


async def test_sending_after_the_client_left_raises_client_disconnected(sending: tuple[Sending, str]) -> None:
    app, url = sending
    async with websockets.connect(url):
        await asyncio.wait_for(app.ready.wait(), 10)
    assert (await asyncio.wait_for(app.receive(), 10))["type"] == "websocket.disconnect"
    assert app.direct is not None
    with pytest.raises(ClientDisconnected):
        await app.direct.send_texts([b'{"type":"late"}'])


class FakeWebSocket:
    """A Starlette `WebSocket` as `texts_sender` sees it, with no direct extension."""

    def __init__(self) -> None:
        self.scope: Scope = {"extensions": {}}
        self.sent: list[str] = []

    async def send_text(self, text: str) -> None:
        self.sent.append(text)


async def test_without_the_extension_each_message_is_an_asgi_send() -> None:
    websocket = FakeWebSocket()
    await texts_sender(websocket)([b'{"n":1}', '{"n":"é"}'.encode()])
    assert websocket.sent == ['{"n":1}', '{"n":"é"}']
