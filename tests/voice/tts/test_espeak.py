from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from contextlib import aclosing
from typing import Any

import numpy as np
import pytest

from providers.contract import BillingSource, ErrorClass
from providers.errors import ProviderError
from tests.offline_voice import require_espeak
from voice.tts.espeak import ESPEAK_SAMPLE_RATE, EspeakTTS, parse_voice_list


@pytest.fixture(autouse=True)
def espeak_installed() -> None:
    require_espeak()


# Far more audio than a pipe buffer holds: espeak-ng cannot finish until we read it all.
LONG_TEXT = "This sentence is one of many in a long paragraph that keeps going. " * 30

Spawn = Callable[..., Coroutine[Any, Any, asyncio.subprocess.Process]]


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[asyncio.subprocess.Process]:
    """Record the processes the engine starts (the real ones; nothing is faked)."""
    processes: list[asyncio.subprocess.Process] = []
    real: Spawn = asyncio.create_subprocess_exec

    async def spy(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        process = await real(*args, **kwargs)
        if "--stdout" in args:
            processes.append(process)
        return process

    monkeypatch.setattr(asyncio, "create_subprocess_exec", spy)
    return processes


def rms(pcm: bytes) -> float:
    return float(np.sqrt(np.mean(np.frombuffer(pcm, dtype="<i2").astype(np.float64) ** 2)))


async def speak(engine: EspeakTTS, text: str, voice: str | None = None) -> bytes:
    return b"".join([chunk async for chunk in engine.synthesize(text, voice=voice)])


async def test_speaks_pcm16_at_22050_hz_and_bills_the_platform() -> None:
    engine = EspeakTTS()
    assert engine.sample_rate == ESPEAK_SAMPLE_RATE
    assert engine.billing_source is BillingSource.PLATFORM
    audio = await speak(engine, "Hello, this is the offline voice.")
    seconds = len(audio) / (2 * ESPEAK_SAMPLE_RATE)
    assert 1.0 < seconds < 4.0
    assert rms(audio) > 500
    # No WAV header leaks into the PCM stream.
    assert not audio.startswith(b"RIFF")


async def test_first_audio_arrives_while_espeak_is_still_speaking(
    spawned: list[asyncio.subprocess.Process],
) -> None:
    engine = EspeakTTS()
    async with aclosing(engine.synthesize(LONG_TEXT)) as stream:
        first = await anext(stream)
        [process] = spawned
        assert first
        assert process.returncode is None
        rest = b"".join([chunk async for chunk in stream])
    assert process.returncode == 0
    assert (len(first) + len(rest)) / (2 * ESPEAK_SAMPLE_RATE) > 60


async def test_closing_the_stream_kills_espeak(spawned: list[asyncio.subprocess.Process]) -> None:
    async with aclosing(EspeakTTS().synthesize(LONG_TEXT)) as stream:
        await anext(stream)
    [process] = spawned
    assert process.returncode == -9


async def test_cancelling_a_consumer_that_holds_the_stream_kills_espeak_at_once(
    spawned: list[asyncio.subprocess.Process],
) -> None:
    first_audio = asyncio.Event()

    async def consume() -> None:
        async with aclosing(EspeakTTS().synthesize(LONG_TEXT)) as stream:
            async for _ in stream:
                first_audio.set()
                await asyncio.Event().wait()  # a consumer stuck on playback

    task = asyncio.create_task(consume())
    await first_audio.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [process] = spawned
    assert process.returncode == -9


async def test_an_abandoned_stream_is_closed_by_the_loop_and_kills_espeak(
    spawned: list[asyncio.subprocess.Process],
) -> None:
    first_audio = asyncio.Event()

    async def consume() -> None:
        async for _ in EspeakTTS().synthesize(LONG_TEXT):
            first_audio.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(consume())
    await first_audio.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [process] = spawned
    # Unread, espeak-ng blocks on its full pipe forever; only the kill can end it. The
    # loop's async-generator finaliser closes the dropped stream shortly after.
    assert await asyncio.wait_for(process.wait(), timeout=10) == -9


async def test_known_voices_are_used_and_unknown_ones_fall_back_to_the_default() -> None:
    engine = EspeakTTS(voice="en-us")
    text = "Good morning."
    default = await speak(engine, text)
    assert await speak(engine, text, voice="21m00Tcm4TlvDq8ikWAM") == default
    assert await speak(engine, text, voice="alloy") == default
    british = await speak(engine, text, voice="en-gb")
    assert british and british != default
    female = await speak(engine, text, voice="en-us+f3")
    assert female and female != default


async def test_text_is_never_read_as_an_option() -> None:
    audio = await speak(EspeakTTS(), "--help -v xx")
    assert len(audio) / (2 * ESPEAK_SAMPLE_RATE) > 0.5


async def test_a_missing_executable_is_a_fallback_eligible_error() -> None:
    engine = EspeakTTS(executable="espeak-ng-not-installed")
    with pytest.raises(ProviderError) as caught:
        await speak(engine, "Hello.")
    assert caught.value.error_class is ErrorClass.NOT_FOUND
    assert caught.value.fallback_eligible


def test_parses_the_voice_listing() -> None:
    listing = (
        "Pty Language       Age/Gender VoiceName          File                 Other Languages\n"
        " 5  en-us           --/M      English_(America)  gmw/en-US            (en 10)\n"
        " 5  eu              --/M      Basque             eu                   \n"
        " 5  variant         --/F      Alicia             !v/Alicia            \n"
    )
    assert parse_voice_list(listing) == ["en-us", "gmw/en-US", "eu", "eu", "!v/Alicia"]
