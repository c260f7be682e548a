from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from providers.contract import BillingSource, ErrorClass
from providers.errors import ProviderError
from tests.offline_voice import whisper_model
from tests.voice.speech import SENTENCES, silence, speak
from tests.voice.wer import word_error_rate
from voice.stt.whisper import WhisperSTT

pytestmark = pytest.mark.slow
HANG_GUARD = 60.0
"""How long a test waits for an event that should follow at once: a bound on a hang only."""


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return whisper_model(tmp_path_factory.mktemp("models") / "whisper-base")


@pytest.fixture(scope="module")
def whisper(whisper_dir: Path) -> WhisperSTT:
    # One engine for the module: the model loads once, whichever test's loop asks first.
    return WhisperSTT(whisper_dir, language="en")


async def test_transcribes_spoken_sentences_with_low_word_error_rate(whisper: WhisperSTT) -> None:
    transcripts = [await whisper.transcribe(speak(sentence)) for sentence in SENTENCES]
    hypotheses = [t.text for t in transcripts]
    assert len(SENTENCES) >= 5
    assert word_error_rate(SENTENCES, hypotheses) < 0.15, hypotheses
    first = transcripts[0]
    assert first.engine == "internal:whisper" and first.model == "whisper-base" and first.language == "en"
    assert first.audio_seconds == pytest.approx(len(speak(SENTENCES[0])) / 32_000)
    assert whisper.billing_source is BillingSource.PLATFORM


async def test_silence_transcribes_to_little_or_nothing(whisper: WhisperSTT) -> None:
    transcript = await whisper.transcribe(silence(1500))
    assert len(transcript.text.split()) <= 2


async def test_decoding_never_blocks_the_event_loop(
    whisper: WhisperSTT, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Shown by ordering, not by timing: the decode waits, before it starts, for a signal only
    # this test's event loop sends once it has seen the decode begin. Were the decode on the
    # loop, the loop could not send it and the wait would run out.
    await whisper.load()
    decode = whisper._decode
    began = threading.Event()
    go = threading.Event()
    released: list[bool] = []

    def gated(pcm: bytes, language: str | None) -> tuple[str, str | None]:
        began.set()
        released.append(go.wait(HANG_GUARD))
        return decode(pcm, language)

    monkeypatch.setattr(whisper, "_decode", gated)
    task = asyncio.create_task(whisper.transcribe(speak(SENTENCES[2])))
    assert await asyncio.to_thread(began.wait, HANG_GUARD)
    assert not task.done()
    go.set()
    transcript = await task
    assert released == [True]
    assert transcript.text


async def test_a_missing_model_is_a_fallback_eligible_error(tmp_path: Path) -> None:
    engine = WhisperSTT(tmp_path / "nowhere")
    with pytest.raises(ProviderError) as caught:
        await engine.transcribe(silence(500))
    assert caught.value.error_class is ErrorClass.NOT_FOUND
    assert caught.value.fallback_eligible
    assert "python -m voice.models" in caught.value.message
    assert not engine.loaded


async def test_a_prefetched_clip_is_transcribed_from_the_kept_decode(
    whisper: WhisperSTT, monkeypatch: pytest.MonkeyPatch
) -> None:
    await whisper.load()
    decode = whisper._decode
    decodes: list[int] = []

    def counted(pcm: bytes, language: str | None, previous: str | None = None) -> tuple[str, str | None]:
        decodes.append(len(pcm))
        return decode(pcm, language, previous)

    monkeypatch.setattr(whisper, "_decode", counted)
    clip = speak(SENTENCES[3])
    partial = await whisper.prefetch(clip, language="en")
    transcript = await whisper.transcribe(clip, language="en")
    assert partial is not None and transcript.text == partial
    assert word_error_rate([SENTENCES[3]], [partial]) < 0.3
    assert decodes == [len(clip)]  # one decode served both
    # A different clip is not mistaken for it.
    await whisper.transcribe(clip + silence(100), language="en")
    assert len(decodes) == 2


async def test_a_speculation_left_on_an_ended_loop_is_not_awaited_on_the_next(whisper: WhisperSTT) -> None:
    """One engine serves several event loops over its life (a test's each; tests share it). A
    prefetch whose loop ended before its decode finished is forgotten, not awaited: the clip is
    decoded again for the loop that asks now."""
    await whisper.load()
    clip = speak(SENTENCES[2])

    async def prefetch_then_end() -> None:
        started = asyncio.ensure_future(whisper.prefetch(clip, language="en"))
        await asyncio.sleep(0)  # the speculation is started; the loop ends under it
        assert not started.done()

    await asyncio.to_thread(asyncio.run, prefetch_then_end())
    transcript = await asyncio.wait_for(whisper.transcribe(clip, language="en"), HANG_GUARD)
    assert word_error_rate([SENTENCES[2]], [transcript.text]) < 0.3
    assert await asyncio.wait_for(whisper.prefetch(clip, language="en"), HANG_GUARD) is not None
