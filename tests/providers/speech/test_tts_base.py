from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing

import pytest

from providers.contract import ErrorClass
from providers.errors import ProviderError
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
