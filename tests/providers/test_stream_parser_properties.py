"""Property tests of every SSE/JSON parser behind the chat adapters (issue 19, fault suite).

Each chat adapter is driven through its real `stream` and `complete` over an in-memory
transport (`httpx.MockTransport`), so the SSE decoder, the JSON parsing and the wire
translator are exercised together, as in production:
- a valid stream (built by the vendor's emulator) cut at arbitrary points, mid-line and
  mid-UTF-8, gives exactly the events of the same stream in one piece;
- arbitrary bytes, a valid stream with garbage spliced in, or well-formed SSE whose data is
  arbitrary JSON, end in events or a `ProviderError`: never any other exception;
- the same for a non-streamed body of arbitrary bytes or arbitrary JSON.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from providers.adapters import chat_adapters
from providers.adapters.base import Endpoint
from providers.contract import PRESETS, ProviderId, WireProtocol
from providers.errors import ProviderError
from providers.sse import SSEDecoder
from providers.types import ChatRequest, Message, Role, TextPart
from providers.upstream_pool import UpstreamClients
from tests.emulators import anthropic as anthropic_emu
from tests.emulators import chat_scenarios as cs
from tests.emulators import gemini as gemini_emu
from tests.emulators.openai_wire import DONE, Scenario, Wire, sse_frame
from tests.emulators.scripted import CanaryCredential

PROVIDER = {
    WireProtocol.OPENAI_CHAT: ProviderId.OPENAI,
    WireProtocol.ANTHROPIC_MESSAGES: ProviderId.ANTHROPIC,
    WireProtocol.GEMINI_GENERATE: ProviderId.GEMINI,
}
WIRES = tuple(PROVIDER)
MODEL = {
    WireProtocol.OPENAI_CHAT: "gpt-4o-mini",
    WireProtocol.ANTHROPIC_MESSAGES: "claude-sonnet-4-5",
    WireProtocol.GEMINI_GENERATE: "gemini-2.5-flash",
}
REQUEST_JSON: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], "contents": []}
ANTHROPIC_EVENTS = (
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
)
PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

answers = st.text(min_size=1, max_size=40)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
# Keys the translators look for, so arbitrary JSON reaches past the first lookup.
wire_keys = st.sampled_from(
    ["choices", "delta", "content", "candidates", "parts", "text", "type", "index", "usage",
     "message", "content_block", "tool_calls", "finish_reason", "finishReason", "error",
     "usageMetadata", "functionCall", "stop_reason", "promptFeedback"]
)  # fmt: skip
wire_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-2, 5)
    | st.text(max_size=6)
    | st.sampled_from(["text", "text_delta"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(wire_keys, inner, max_size=4),
    max_leaves=16,
)


def valid_stream(wire: WireProtocol, answer: str) -> bytes:
    """What the vendor sends for a plain text answer, per its emulator."""
    if wire is WireProtocol.OPENAI_CHAT:
        chunks = Wire("openai").chunks(Scenario(text=answer), REQUEST_JSON, MODEL[wire])
        return b"".join(sse_frame(c) for c in chunks) + DONE
    scenario = cs.text(answer, pieces=3)
    if wire is WireProtocol.ANTHROPIC_MESSAGES:
        return b"".join(anthropic_emu.stream_bytes(scenario, REQUEST_JSON))
    return b"".join(gemini_emu.stream_bytes(scenario, {"contents": [{"role": "user"}]}, MODEL[wire]))


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]


class _Chunks(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


class Upstream:
    """One event loop and one upstream pool for all of a test's examples; each example sets
    the body the in-memory upstream answers with."""

    def __init__(self) -> None:
        self.runner = asyncio.Runner()
        self.chunks: list[bytes] = []
        self.ctype = ""
        self.clients = self.runner.run(self._open())

    async def _open(self) -> UpstreamClients:
        return UpstreamClients(transport_factory=lambda: httpx.MockTransport(self._answer))

    def _answer(self, _: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": self.ctype}, stream=_Chunks(self.chunks))

    def run(self, wire: WireProtocol, chunks: list[bytes], *, stream: bool) -> list[Any] | ProviderError:
        """The adapter's events (or its one response) for a 200 with `chunks`, or its typed error."""
        self.chunks = chunks
        self.ctype = "text/event-stream" if stream else "application/json"
        return self.runner.run(self._call(wire, stream))

    async def _call(self, wire: WireProtocol, stream: bool) -> list[Any] | ProviderError:
        adapter = chat_adapters(self.clients)[wire]
        endpoint = Endpoint(
            preset=PRESETS[PROVIDER[wire]], base_url="https://upstream.test", credential=CanaryCredential()
        )
        request = ChatRequest(model=MODEL[wire], messages=(Message(Role.USER, (TextPart("hi"),)),))
        try:
            if stream:
                return [event async for event in adapter.stream(request, endpoint)]
            return [await adapter.complete(request, endpoint)]
        except ProviderError as exc:
            return exc

    def close(self) -> None:
        self.runner.run(self.clients.aclose())
        self.runner.close()


@pytest.fixture(params=WIRES, ids=[w.value for w in WIRES])
def wire(request: pytest.FixtureRequest) -> WireProtocol:
    return WireProtocol(request.param)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    u = Upstream()
    yield u
    u.close()


@PROPERTY
@given(answer=answers, points=st.lists(st.integers(min_value=0), max_size=12))
def test_any_chunking_of_a_valid_stream_gives_the_same_events(
    upstream: Upstream, wire: WireProtocol, answer: str, points: list[int]
) -> None:
    data = valid_stream(wire, answer)
    whole = upstream.run(wire, [data], stream=True)
    assert isinstance(whole, list) and whole, whole
    assert upstream.run(wire, cut(data, points), stream=True) == whole


@PROPERTY
@given(
    answer=answers,
    at=st.integers(min_value=0),
    garbage=st.binary(max_size=64),
    points=st.lists(st.integers(min_value=0), max_size=6),
)
def test_garbage_in_a_stream_is_a_typed_error(
    upstream: Upstream, wire: WireProtocol, answer: str, at: int, garbage: bytes, points: list[int]
) -> None:
    data = valid_stream(wire, answer)
    at %= len(data) + 1
    outcome = upstream.run(wire, cut(data[:at] + garbage + data[at:], points), stream=True)
    assert isinstance(outcome, list | ProviderError)


@PROPERTY
@given(data=st.binary(max_size=200), points=st.lists(st.integers(min_value=0), max_size=6))
def test_arbitrary_bytes_are_a_typed_error(
    upstream: Upstream, wire: WireProtocol, data: bytes, points: list[int]
) -> None:
    for stream in (True, False):
        assert isinstance(upstream.run(wire, cut(data, points), stream=stream), list | ProviderError)


@PROPERTY
@given(frames=st.lists(st.tuples(st.sampled_from(ANTHROPIC_EVENTS), wire_json | json_values), max_size=6))
def test_arbitrary_json_events_are_a_typed_error(
    upstream: Upstream, wire: WireProtocol, frames: list[tuple[str, Any]]
) -> None:
    named = wire is WireProtocol.ANTHROPIC_MESSAGES
    data = b"".join(
        (f"event: {name}\n".encode() if named else b"") + b"data: " + orjson.dumps(value) + b"\n\n"
        for name, value in frames
    )
    assert isinstance(upstream.run(wire, [data], stream=True), list | ProviderError)


@PROPERTY
@given(value=wire_json | json_values)
def test_arbitrary_json_bodies_are_a_typed_error(upstream: Upstream, wire: WireProtocol, value: Any) -> None:
    assert isinstance(upstream.run(wire, [orjson.dumps(value)], stream=False), list | ProviderError)


@PROPERTY
@given(data=st.binary(max_size=300), points=st.lists(st.integers(min_value=0), max_size=10))
def test_sse_decoder_is_indifferent_to_chunking(data: bytes, points: list[int]) -> None:
    def decode(chunks: list[bytes]) -> list[Any]:
        decoder = SSEDecoder()
        return [e for chunk in chunks for e in decoder.feed(chunk)] + decoder.end()

    assert decode(cut(data, points)) == decode([data])
