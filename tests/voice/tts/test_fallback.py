from __future__ import annotations

import asyncio
from contextlib import aclosing

import numpy as np
import pytest

from providers.contract import BillingSource, ErrorClass
from providers.errors import ProviderError
from providers.speech.base import TTSEngine
from tests.voice.fakes import FakeTTS
from voice.stt import Attempt
from voice.tts import FallbackTTS


def failure(error_class: ErrorClass) -> ProviderError:
    return ProviderError(error_class, "scripted failure", provider="x")


async def collect(engine: TTSEngine, text: str = "Hello there.") -> bytes:
    return b"".join([chunk async for chunk in engine.synthesize(text, voice="v1")])


def dominant_frequency(pcm: bytes, rate: int) -> float:
    values = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(values))
    return float(np.fft.rfftfreq(len(values), 1 / rate)[int(np.argmax(spectrum))])


async def test_falls_back_before_audio_and_resamples_to_the_chain_rate() -> None:
    served: list[TTSEngine] = []
    cloud = FakeTTS(
        "elevenlabs:default",
        sample_rate=24_000,
        error=failure(ErrorClass.QUOTA_EXHAUSTED),
        billing_source=BillingSource.BYOK,
    )
    espeak = FakeTTS("internal:espeak", sample_rate=22_050, chunks=10, chunk_ms=50)
    chain = FallbackTTS([cloud, espeak], on_served=served.append)
    assert chain.sample_rate == 24_000  # the highest of its engines'

    audio = await collect(chain)

    assert len(audio) == pytest.approx(0.5 * 24_000 * 2, abs=4)
    assert dominant_frequency(audio, 24_000) == pytest.approx(440, abs=3)
    assert chain.last_served is espeak and served == [espeak]
    assert chain.billing_source is BillingSource.PLATFORM
    assert chain.last_attempts == (
        Attempt("elevenlabs:default", ErrorClass.QUOTA_EXHAUSTED),
        Attempt("internal:espeak", None),
    )
    assert espeak.state.calls[0].voice == "v1"


async def test_an_explicit_rate_resamples_every_engine() -> None:
    chain = FallbackTTS([FakeTTS(sample_rate=24_000, chunks=4, chunk_ms=100)], sample_rate=16_000)
    audio = await collect(chain)
    assert len(audio) == pytest.approx(0.4 * 16_000 * 2, abs=4)
    assert dominant_frequency(audio, 16_000) == pytest.approx(440, abs=3)


async def test_no_fallback_once_audio_was_yielded() -> None:
    first = FakeTTS("fake:first", sample_rate=16_000, error=failure(ErrorClass.NETWORK), fail_after=2)
    second = FakeTTS("fake:second", sample_rate=16_000)
    chain = FallbackTTS([first, second])
    received: list[bytes] = []
    with pytest.raises(ProviderError) as caught:
        async for chunk in chain.synthesize("Half a sentence."):
            received.append(chunk)
    assert caught.value.error_class is ErrorClass.NETWORK
    assert b"".join(received) == first.audio()[: 2 * len(first.audio()) // 5]
    assert second.state.calls == []
    assert chain.last_served is first
    assert chain.last_attempts == (Attempt("fake:first", ErrorClass.NETWORK),)


async def test_fail_fast_errors_do_not_fall_back() -> None:
    second = FakeTTS("fake:second")
    chain = FallbackTTS([FakeTTS("fake:first", error=failure(ErrorClass.CONTENT_FILTER)), second])
    with pytest.raises(ProviderError) as caught:
        await collect(chain)
    assert caught.value.error_class is ErrorClass.CONTENT_FILTER
    assert second.state.calls == []
    assert chain.last_served is None


async def test_all_engines_failing_raises_one_error() -> None:
    chain = FallbackTTS(
        [
            FakeTTS("fake:a", error=failure(ErrorClass.OVERLOADED)),
            FakeTTS("fake:b", error=RuntimeError("crash")),
        ]
    )
    with pytest.raises(ProviderError) as caught:
        await collect(chain)
    assert caught.value.error_class is ErrorClass.SERVER_ERROR
    assert "fake:a=overloaded" in caught.value.message and "fake:b=server_error" in caught.value.message


async def test_an_engine_silent_past_the_attempt_timeout_is_skipped() -> None:
    stalled = FakeTTS("fake:stalled", gate=asyncio.Event())
    second = FakeTTS("fake:second")
    chain = FallbackTTS([stalled, second], attempt_timeout=0.05)
    audio = await collect(chain)
    assert audio == second.audio()
    assert chain.last_attempts[0] == Attempt("fake:stalled", ErrorClass.TIMEOUT)
    assert stalled.state.closed


async def test_closing_the_chain_closes_the_serving_engine() -> None:
    engine = FakeTTS(chunks=50)
    chain = FallbackTTS([engine, FakeTTS("fake:unused")])
    async with aclosing(chain.synthesize("Long text.")) as stream:
        async for _ in stream:
            break
    assert engine.state.closed
    assert engine.state.chunks_yielded < 50
