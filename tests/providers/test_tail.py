"""A finished stream's connection goes back to the pool (providers/tail.py).

Each wire's emulator runs on loopback behind a `TcpProxy`, which counts the connections the
client opens, and behind `HeldEnd`, which holds the end of each response body (the chunked
body's terminating chunk) until the test releases it: the adapter has read the protocol's end
(OpenAI's `[DONE]`, Anthropic's `message_stop`) and ended its stream while the body is still
open, as when the terminator comes in a read of its own.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import REGISTRY

from providers.adapters.anthropic_messages import AnthropicMessagesAdapter
from providers.adapters.base import ChatAdapter, Endpoint
from providers.adapters.openai_chat import OpenAIChatAdapter
from providers.contract import PRESETS, ProviderId
from providers.tail import TAIL_BYTES, Tails
from providers.types import ChatRequest, Finish, FinishReason, Message, Role, StreamEvent, TextPart
from providers.upstream_pool import UpstreamClients
from tests.emulators import chat_scenarios
from tests.emulators.anthropic import AnthropicEmulator
from tests.emulators.harness import ServedApp
from tests.emulators.openai import OpenAIEmulator, text
from tests.emulators.scripted import CanaryCredential
from tests.emulators.tcp_proxy import TcpProxy
from tests.providers.test_openai_chat_loopback import HANG_GUARD, STEADY

KEY = "sk-test-CANARY-0c1d2e3f4a5b6c7d8e9f"


def tails_counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("patchbay_upstream_tails_total", {"outcome": outcome}) or 0.0


class HeldEnd:
    """ASGI wrapper: each response's last body message waits until `release` (thread-safe; the
    emulator runs on a thread of its own)."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def held(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                await asyncio.to_thread(self._released.wait, HANG_GUARD)
            await send(message)

        await self.app(scope, receive, held)


@dataclass
class Wire:
    """One protocol's emulator, scripting, adapter and endpoint."""

    app: Callable[..., Awaitable[None]]
    enqueue: Callable[[str], None]
    adapter: Callable[[UpstreamClients], ChatAdapter]
    provider: ProviderId
    path: str
    model: str


def openai() -> Wire:
    emu = OpenAIEmulator("openai", api_key=KEY)
    return Wire(
        emu,
        lambda reply: emu.enqueue(text(reply)),
        lambda clients: OpenAIChatAdapter(clients, STEADY),
        ProviderId.OPENAI,
        "/v1",
        "gpt-4o-mini",
    )


def anthropic() -> Wire:
    emu = AnthropicEmulator(api_key=KEY)
    return Wire(
        emu.app,
        lambda reply: emu.enqueue(chat_scenarios.text(reply)),
        lambda clients: AnthropicMessagesAdapter(clients, STEADY),
        ProviderId.ANTHROPIC,
        "",
        "claude-sonnet-4-6",
    )


@dataclass
class Upstream:
    wire: Wire
    held: HeldEnd
    proxy: TcpProxy

    def enqueue(self, *replies: str) -> None:
        for reply in replies:
            self.wire.enqueue(reply)

    def events(self, adapter: ChatAdapter) -> AsyncIterator[StreamEvent]:
        endpoint = Endpoint(
            PRESETS[self.wire.provider],
            f"http://127.0.0.1:{self.proxy.port}{self.wire.path}",
            CanaryCredential(KEY),
            label="tail:test",
        )
        request = ChatRequest(model=self.wire.model, messages=(Message(Role.USER, (TextPart("Hi"),)),))
        return adapter.stream(request, endpoint)

    async def stream(self, adapter: ChatAdapter) -> list[StreamEvent]:
        return [event async for event in self.events(adapter)]


@pytest.fixture(params=[openai, anthropic], ids=["openai", "anthropic"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[Wire, HeldEnd, ServedApp]]:
    wire = request.param()
    held = HeldEnd(wire.app)
    server = ServedApp(held).start()
    yield wire, held, server
    held.release()  # lets the emulator's thread finish a body it still holds
    server.stop()


@pytest.fixture
async def upstream(served: tuple[Wire, HeldEnd, ServedApp]) -> AsyncIterator[Upstream]:
    wire, held, server = served
    async with TcpProxy("127.0.0.1", server.port) as proxy:
        yield Upstream(wire, held, proxy)


async def test_a_stream_ended_by_its_protocol_keeps_its_connection_for_the_next_request(
    upstream: Upstream,
) -> None:
    upstream.enqueue("one", "two")
    pooled = tails_counted("pooled")
    async with UpstreamClients() as clients:
        adapter = upstream.wire.adapter(clients)
        first = await upstream.stream(adapter)
        # The caller has the whole reply; the body's end is still held by the server.
        assert isinstance(first[-1], Finish)
        assert first[-1].reason is FinishReason.STOP
        assert clients.tails.reading == 1
        upstream.held.release()
        await clients.tails.settled()
        assert tails_counted("pooled") == pooled + 1
        second = await upstream.stream(adapter)
        assert isinstance(second[-1], Finish)
    assert upstream.proxy.accepted == 1


async def test_a_tail_that_does_not_end_drops_the_connection(upstream: Upstream) -> None:
    upstream.enqueue("one", "two")
    dropped = tails_counted("dropped")
    async with UpstreamClients() as clients:
        clients.tails = Tails(seconds=0.05)  # the body's end never comes while the test runs
        adapter = upstream.wire.adapter(clients)
        await upstream.stream(adapter)
        await clients.tails.settled()
        assert clients.tails.reading == 0
        assert tails_counted("dropped") == dropped + 1
        assert isinstance((await upstream.stream(adapter))[-1], Finish)
    assert upstream.proxy.accepted == 2


async def test_a_stream_left_before_its_end_drops_its_connection(upstream: Upstream) -> None:
    upstream.enqueue("a reply long enough to have several chunks", "two")
    async with UpstreamClients() as clients:
        adapter = upstream.wire.adapter(clients)
        events = upstream.events(adapter)
        await anext(events)
        await events.aclose()  # type: ignore[attr-defined]
        # Not finished: closed at once (the provider stops generating), no tail to read.
        assert clients.tails.reading == 0
        await upstream.stream(adapter)
    assert upstream.proxy.accepted == 2


async def test_closing_the_clients_gives_up_every_tail(upstream: Upstream) -> None:
    upstream.enqueue("one")
    clients = UpstreamClients()
    await upstream.stream(upstream.wire.adapter(clients))
    assert clients.tails.reading == 1
    await clients.aclose()
    assert clients.tails.reading == 0


class Body:
    """A response body for `Tails.read_out`: the chunks to return, then None; records the close."""

    def __init__(self, chunks: list[bytes], *, then_wait: bool = False) -> None:
        self.chunks = chunks
        self.then_wait = then_wait
        self.reads = 0
        self.closed = asyncio.Event()

    async def read(self) -> bytes | None:
        self.reads += 1
        if self.chunks:
            return self.chunks.pop(0)
        if self.then_wait:
            await asyncio.Event().wait()
        return None

    def close(self) -> None:
        self.closed.set()


async def test_a_tail_is_read_to_its_end_then_closed() -> None:
    tails = Tails()
    body = Body([b"", b"0\r\n"])
    tails.read_out(body.read, body.close, within=10)
    await tails.settled()
    assert body.closed.is_set()
    assert body.reads == 3  # two chunks, then the end


async def test_a_tail_longer_than_the_bound_is_cut() -> None:
    tails = Tails()
    body = Body([b"x" * (TAIL_BYTES // 2)] * 10)
    tails.read_out(body.read, body.close, within=10)
    await tails.settled()
    assert body.closed.is_set()
    assert body.reads == 3  # the third read crosses TAIL_BYTES


async def test_a_tail_waits_no_longer_than_the_calls_own_gap() -> None:
    tails = Tails(seconds=3600)
    body = Body([], then_wait=True)
    tails.read_out(body.read, body.close, within=0.01)  # the call's `between_chunks`
    await tails.settled()
    assert body.closed.is_set()


async def test_a_failing_read_still_closes() -> None:
    closed = asyncio.Event()

    async def broken() -> bytes | None:
        raise ConnectionResetError("reset by peer")

    tails = Tails()
    tails.read_out(broken, closed.set, within=10)
    await tails.settled()
    assert closed.is_set()
