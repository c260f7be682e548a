from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing

import pytest

from providers.contract import ErrorClass
from providers.errors import ProviderError
from providers.speech.audio_bound import audio_bound_bytes
from tests.voice.fakes import FakeTTS

SECRET = "xi-secret-0123456789abcdef"


async def collect(engine: FakeTTS, text: str = "Hello there.") -> list[bytes]:
    return [chunk async for chunk in engine.synthesize(text)]


async def test_streams_the_engine_audio_in_whole_samples() -> None:
    engine = FakeTTS(chunk_split=333)  # an HTTP stream may split a sample across chunks
    chunks = await collect(engine)
    assert all(chunk and len(chunk) % 2 == 0 for chunk in chunks)
    assert b"".join(chunks) == engine.audio()
    assert engine.state.calls[0].text == "Hello there."
    assert engine.state.closed


async def test_blank_text_never_reaches_the_engine() -> None:
    engine = FakeTTS()
    assert await collect(engine, " \n\t") == []
    assert engine.state.calls == []


async def test_unexpected_exceptions_become_server_errors_without_their_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = FakeTTS("fake:leaky", error=ValueError(f"bad header xi-api-key={SECRET}"), fail_after=2)
    received: list[bytes] = []
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderError) as caught:
        async for chunk in engine.synthesize("Secret sentence."):
            received.append(chunk)
    assert len(received) == 2
    assert caught.value.error_class is ErrorClass.SERVER_ERROR
    assert caught.value.provider == "fake:leaky"
    assert caught.value.__context__ is None
    for text in (
        str(caught.value),
        repr(caught.value),
        caplog.text,
        *(str(r.__dict__) for r in caplog.records),
    ):
        assert SECRET not in text
        assert "Secret sentence" not in text


async def test_closing_the_iterator_closes_the_engine_at_once() -> None:
    engine = FakeTTS(chunks=50)
    async with aclosing(engine.synthesize("A long paragraph.")) as stream:
        async for _ in stream:
            break
    assert engine.state.closed
    assert engine.state.chunks_yielded == 1


async def test_cancelling_the_consumer_cancels_the_engine() -> None:
    gate = asyncio.Event()
    engine = FakeTTS(gate=gate)

    async def consume() -> None:
        async for _ in engine.synthesize("Never spoken."):
            pass

    task = asyncio.create_task(consume())
    await engine.state.entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert engine.state.cancelled and engine.state.closed
    assert engine.state.chunks_yielded == 0


class EndlessTTS(FakeTTS):
    """An engine whose audio never ends: 20 ms chunks, up to `cap` bytes (so a missing bound
    fails the test instead of hanging it)."""

    def __init__(self, cap: int) -> None:
        super().__init__("fake:endless")
        self.cap = cap
        self.sent = 0

    async def _synthesize(self, text: str, voice: str | None) -> AsyncIterator[bytes]:
        chunk = bytes(2 * self.sample_rate // 50)
        try:
            while self.sent < self.cap:
                self.sent += len(chunk)
                yield chunk
        finally:
            self.state.closed = True


async def test_audio_that_never_ends_is_cut_off_at_the_bound_for_the_text() -> None:
    text = "Hello there."
    bound = audio_bound_bytes(len(text), 24_000)
    engine = EndlessTTS(cap=10 * bound)
    received = 0
    with pytest.raises(ProviderError) as caught:
        async for chunk in engine.synthesize(text):
            received += len(chunk)
    assert caught.value.error_class is ErrorClass.SERVER_ERROR
    assert caught.value.provider == "fake:endless"
    assert f"{len(text)} characters" in caught.value.message
    assert bound - 960 <= received <= bound  # everything up to the bound was spoken, nothing past it
    assert engine.state.closed and engine.sent < 2 * bound


async def test_audio_up_to_the_bound_is_spoken_whole() -> None:
    text = "Hi."
    bound = audio_bound_bytes(len(text), 24_000)
    engine = EndlessTTS(cap=bound)  # exactly as much audio as the bound allows, then the end
    assert sum(len(chunk) for chunk in await collect(engine, text)) == bound
