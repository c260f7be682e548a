from __future__ import annotations

import asyncio
import logging

import pytest

from providers.contract import ErrorClass
from providers.errors import ProviderError
from tests.voice.fakes import FakeSTT
from voice.clock import ManualClock

SECRET = "sk-live-abcdef0123456789"
ONE_SECOND = b"\x00\x00" * 16_000


async def test_transcribe_returns_the_engine_transcript() -> None:
    engine = FakeSTT("fake:a", text="turn on the lights")
    transcript = await engine.transcribe(ONE_SECOND, language="en")
    assert transcript.text == "turn on the lights"
    assert transcript.engine == "fake:a"
    assert transcript.audio_seconds == pytest.approx(1.0)
    assert engine.calls[0].language == "en"


async def test_half_a_sample_is_an_invalid_request_and_never_reaches_the_engine() -> None:
    engine = FakeSTT()
    with pytest.raises(ProviderError) as caught:
        await engine.transcribe(b"\x00\x00\x00")
    assert caught.value.error_class is ErrorClass.INVALID_REQUEST
    assert not caught.value.fallback_eligible
    assert engine.calls == []


async def test_unexpected_exceptions_become_server_errors_without_their_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = FakeSTT("fake:leaky", error=RuntimeError(f"upstream said: bad key {SECRET}"))
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderError) as caught:
        await engine.transcribe(ONE_SECOND)
    error = caught.value
    assert error.error_class is ErrorClass.SERVER_ERROR
    assert error.provider == "fake:leaky"
    assert "RuntimeError" in str(error)
    assert error.__cause__ is None and error.__context__ is None
    for text in (str(error), repr(error), caplog.text, *(str(r.__dict__) for r in caplog.records)):
        assert SECRET not in text


async def test_timeout_errors_keep_their_class() -> None:
    with pytest.raises(ProviderError) as caught:
        await FakeSTT(error=TimeoutError()).transcribe(ONE_SECOND)
    assert caught.value.error_class is ErrorClass.TIMEOUT


async def test_provider_errors_pass_through_unchanged() -> None:
    original = ProviderError(ErrorClass.QUOTA_EXHAUSTED, "out of credits", provider="fake:stt", status=401)
    with pytest.raises(ProviderError) as caught:
        await FakeSTT(error=original).transcribe(ONE_SECOND)
    assert caught.value is original


async def test_logs_timing_on_the_injected_clock_and_never_the_transcript(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    gate = asyncio.Event()
    engine = FakeSTT("fake:timed", text="my card number is four four four", gate=gate)
    engine.clock = clock
    with caplog.at_level(logging.DEBUG, logger="providers.speech.base"):
        task = asyncio.create_task(engine.transcribe(ONE_SECOND))
        await asyncio.sleep(0)
        await clock.advance(1.5)
        gate.set()
        transcript = await task
    assert transcript.text.startswith("my card")
    [record] = [r for r in caplog.records if r.name == "providers.speech.base"]
    assert record.__dict__["elapsed_ms"] == 1500.0
    assert record.__dict__["chars"] == len(transcript.text)
    assert "four" not in caplog.text and "four" not in str(record.__dict__)
