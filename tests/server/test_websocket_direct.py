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
import contextlib
import contextvars
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import pytest
import uvicorn
import websockets
from websockets.client import ClientProtocol
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from server.realtime.feed import MessageFeed
from server.serve import WEBSOCKET_PROTOCOL
from server.websocket_direct import DIRECT
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
        self.ready = asyncio.Event()

    def handle(self, message: str | bytes) -> bool:
        if message == "boom":
            raise ValueError("the handler failed")
        if message == "stop":
            return True
        if message == "ready":
            self.ready.set()
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
        with contextlib.suppress(Exception):  # the client may be gone, or closed by the server
            await send({"type": "websocket.send", "text": "stopped"})
            # After the feed, messages come through `receive` again.
            message = await receive()
            if message["type"] == "websocket.receive":
                await send({"type": "websocket.send", "text": f"echo: {message.get('text')}"})
                await send({"type": "websocket.close", "code": 1000})


@pytest.fixture(params=[WEBSOCKET_PROTOCOL, "websockets-sansio"], ids=["direct", "asgi"])
async def served(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Feeding, str, bool]]:
    app = Feeding()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="off", log_level="warning", ws=request.param
    )
    async with uvicorn_in_loop(config):
        yield app, f"ws://127.0.0.1:{config.port}/", request.param == WEBSOCKET_PROTOCOL


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
        await ws.send("one")  # may arrive before the handler is attached
        await ws.send(b"\xff\xfe", text=True)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == CloseCode.INVALID_DATA
    assert app.handled == [("one", "the app's task")]
    app.handled.clear()
    async with opened(url, app) as (reader, writer, client):  # the handler reads from here on
        await write_apart(writer, [masked_text(b"two"), masked_text(b"bad \xff"), masked_text(b"three")])
        assert await closed_with(reader, client) == CloseCode.INVALID_DATA
    assert [message for message, _ in app.handled] == ["ready", "two"]


def frame_sequence(rng: random.Random) -> tuple[list[tuple[str, Any]], list[str | bytes], bool]:
    """Random client frames (as `(kind, payload)`), the messages the app must get from them, and
    whether they end with invalid UTF-8 (the server then closes with 1007)."""
    frames: list[tuple[str, Any]] = []
    expected: list[str | bytes] = []
    for _ in range(rng.randint(1, 12)):
        kind = rng.choice(["small", "voice", "edge", "large", "binary", "ping", "pong", "fragmented"])
        if kind == "small":
            text = "".join(rng.choice('aé€😀 {}"') for _ in range(rng.randint(0, 40)))
            frames.append(("text", text.encode()))
            expected.append(text)
        elif kind in ("voice", "edge", "large"):
            size = {"voice": 1_400, "large": 70_000}.get(kind) or rng.choice([125, 126, 127, 65_535, 65_536])
            text = "".join(rng.choice("ABCDEFGH+/=") for _ in range(size))
            frames.append(("text", text.encode()))
            expected.append(text)
        elif kind == "binary":
            data = rng.randbytes(rng.randint(0, 300))
            frames.append(("binary", data))
            expected.append(data)
        elif kind in ("ping", "pong"):
            frames.append((kind, rng.randbytes(4)))
        else:
            text = "".join(rng.choice("xyz€") for _ in range(rng.randint(2, 60)))
            raw = text.encode()
            cut = rng.randint(0, len(raw))  # fragments may split a character, as RFC 6455 allows
            frames += [("first", raw[:cut]), ("ping", b"mid"), ("last", raw[cut:])]
            expected.append(text)
    invalid = rng.random() < 0.2
    if invalid:
        frames.append(("text", b"ok \xff\xfe"))
    return frames, expected, invalid


def wire_bytes(client: ClientProtocol, frames: list[tuple[str, Any]]) -> bytes:
    for kind, payload in frames:
        if kind == "text":
            client.send_text(payload)
        elif kind == "binary":
            client.send_binary(payload)
        elif kind == "ping":
            client.send_ping(payload)
        elif kind == "pong":
            client.send_pong(payload)
        elif kind == "first":
            client.send_text(payload, fin=False)
        else:
            client.send_continuation(payload, fin=True)
    return b"".join(client.data_to_send())


async def raw_session(
    app: Feeding, url: str, payload: bytes, rng: random.Random
) -> tuple[list[Any], int | None]:
    """Once the app reads the socket, write `payload` cut at random places, then `stop`; the
    server's text messages and its close code."""
    async with opened(url, app) as (reader, writer, client):
        cuts = sorted(rng.sample(range(1, len(payload)), min(len(payload) - 1, rng.randint(0, 8))))
        await write_apart(
            writer, [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
        )
        client.send_text(b"stop")
        writer.write(b"".join(client.data_to_send()))
        texts: list[Any] = []
        async with asyncio.timeout(10):
            while client.close_rcvd is None and "stopped" not in texts:
                data = await reader.read(65_536)
                if not data:
                    break
                client.receive_data(data)
                texts += [
                    bytes(e.data).decode()
                    for e in client.events_received()
                    if isinstance(e, Frame) and e.opcode is Opcode.TEXT
                ]
    return texts, client.close_rcvd.code if client.close_rcvd else None


async def test_any_frame_sequence_reaches_the_app_whole_and_in_order(
    served: tuple[Feeding, str, bool],
) -> None:
    """Text, binary, control, fragmented, 126/127-length and invalid UTF-8 frames, cut anywhere:
    the direct protocol's own frame reading must deliver exactly what websockets would."""
    app, url, _ = served
    app.gate.set()
    rng = random.Random(20261203)
    for _ in range(25):
        frames, expected, invalid = frame_sequence(rng)
        payload = wire_bytes(ClientProtocol(parse_uri(url), state=State.OPEN), frames)
        app.handled.clear()
        app.ended.clear()
        app.ready.clear()
        texts, close_code = await raw_session(app, url, payload, rng)
        if invalid:
            assert close_code == CloseCode.INVALID_DATA
        else:
            assert texts == ["stopped"], frames
        assert [message for message, _ in app.handled] == ["ready", *expected], [kind for kind, _ in frames]


@contextlib.asynccontextmanager
async def opened(
    url: str, app: Feeding | None = None
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter, ClientProtocol]]:
    """A raw socket through the handshake; with `app`, also until the app reads it (`ready`)."""
    host, port = url.removeprefix("ws://").rstrip("/").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        client = ClientProtocol(parse_uri(url))
        client.send_request(client.connect())
        writer.write(b"".join(client.data_to_send()))
        while client.state is not State.OPEN:
            client.receive_data(await asyncio.wait_for(reader.read(65_536), 10))
            client.events_received()
        if app is not None:
            client.send_text(b"ready")
            writer.write(b"".join(client.data_to_send()))
            await asyncio.wait_for(app.ready.wait(), 10)
        yield reader, writer, client
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def write_apart(writer: asyncio.StreamWriter, pieces: Iterable[bytes]) -> None:
    """Each piece on its own, the server (in this loop) given the turns to read it alone."""
    for piece in pieces:
        writer.write(piece)
        await writer.drain()
        for _ in range(3):
            await asyncio.sleep(0)


async def closed_with(reader: asyncio.StreamReader, client: ClientProtocol) -> int | None:
    async with asyncio.timeout(10):
        while client.close_rcvd is None and (data := await reader.read(65_536)):
            client.receive_data(data)
            client.events_received()
    return client.close_rcvd.code if client.close_rcvd else None


def masked_text(payload: bytes) -> bytes:
    """A client text frame with an all-zero mask key, so its payload is on the wire as is."""
    return bytes([0x81, 0x80 | len(payload)]) + bytes(4) + payload


async def test_frames_sent_a_byte_at_a_time(served: tuple[Feeding, str, bool]) -> None:
    app, url, _ = served
    app.gate.set()
    async with opened(url, app) as (_, writer, client):
        for text in ("one", "two €", "three", "stop"):
            client.send_text(text.encode())
        await write_apart(writer, [bytes([byte]) for byte in b"".join(client.data_to_send())])
        await asyncio.wait_for(app.ended.wait(), 10)
    assert [message for message, _ in app.handled] == ["ready", "one", "two €", "three"]


async def test_a_payload_that_looks_like_a_frame_is_still_payload(served: tuple[Feeding, str, bool]) -> None:
    """The binary frame's payload starts like a text frame's header and arrives apart from its
    own header: only websockets, which read that header, may read it."""
    app, url, _ = served
    app.gate.set()
    inner = masked_text(b"fake!")
    async with opened(url, app) as (_, writer, _client):
        header = bytes([0x82, 0x80 | len(inner)]) + bytes(4)
        await write_apart(writer, [header, inner, masked_text(b"stop")])
        await asyncio.wait_for(app.ended.wait(), 10)
    assert [message for message, _ in app.handled] == ["ready", inner]


async def test_a_text_frame_inside_a_fragmented_message_is_a_protocol_error(
    served: tuple[Feeding, str, bool],
) -> None:
    app, url, _ = served
    app.gate.set()
    async with opened(url, app) as (reader, writer, client):
        first = bytes([0x01, 0x83]) + bytes(4) + b"abc"  # text, not final
        await write_apart(writer, [first, masked_text(b"intruder")])  # a new message too soon
        assert await closed_with(reader, client) == CloseCode.PROTOCOL_ERROR
    assert [message for message, _ in app.handled] == ["ready"]


@pytest.mark.parametrize("protocol", [WEBSOCKET_PROTOCOL, "websockets-sansio"], ids=["direct", "asgi"])
async def test_a_frame_over_the_size_limit_closes_the_socket(protocol: str) -> None:
    app = Feeding()
    app.gate.set()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="off", log_level="warning", ws=protocol, ws_max_size=1_000
    )
    async with (
        uvicorn_in_loop(config),
        opened(f"ws://127.0.0.1:{config.port}/", app) as (reader, writer, client),
    ):
        client.send_text(b"x" * 2_000)
        writer.write(b"".join(client.data_to_send()))
        assert await closed_with(reader, client) == CloseCode.MESSAGE_TOO_BIG
    assert [message for message, _ in app.handled] == ["ready"]
