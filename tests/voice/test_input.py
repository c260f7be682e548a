"""The input side: format checks, bounded buffering between turns, turn audio extraction."""

from __future__ import annotations

import pytest

from tests.voice.speech import silence, speak
from voice.audio import PCM16_16K, ULAW_8K, resample
from voice.endpointing import SpeechPaused, SpeechStarted, SpeechStopped, TurnDetectionConfig
from voice.input import InputAudio, InputError, to_stt_rate


def test_silence_never_grows_the_buffer_past_padding_and_slack() -> None:
    audio = InputAudio(PCM16_16K, TurnDetectionConfig(), max_seconds=60)
    for _ in range(3000):  # 60 s of 20 ms frames
        audio.append(silence(20))
    assert audio.buffered_ms <= 300 + 100 + 60 + 1000 + 20
    assert audio.end_ms == pytest.approx(60_000)


def test_a_turn_takes_exactly_its_audio() -> None:
    audio = InputAudio(PCM16_16K, TurnDetectionConfig(), max_seconds=60)
    speech = speak("Hello there, how are you?")
    events = []
    turn = b""
    for chunk in (silence(5000), speech, silence(1500)):
        for offset in range(0, len(chunk), 640):
            events += audio.append(chunk[offset : offset + 640])
            if events and isinstance(events[-1], SpeechStopped) and not turn:
                # As the session does: the turn is taken in the call that ended it.
                turn = audio.take(events[0].audio_start_ms, events[-1].audio_end_ms)
    start, stop = [e for e in events if not isinstance(e, SpeechPaused)]
    assert isinstance(start, SpeechStarted) and isinstance(stop, SpeechStopped)
    assert len(turn) == (stop.audio_end_ms - start.audio_start_ms) * 32  # 16 kHz PCM16
    assert audio.buffered_ms < 1500  # trimmed again once the turn was over


def test_manual_mode_keeps_everything_up_to_the_limit() -> None:
    audio = InputAudio(ULAW_8K, None, max_seconds=1.0)
    audio.append(bytes(4000))  # 0.5 s of 8 kHz mu-law
    assert audio.buffered_ms == 500
    with pytest.raises(InputError) as caught:
        audio.append(bytes(8000))
    assert caught.value.code == "input_audio_buffer_full"


def test_bytes_that_cannot_be_the_format() -> None:
    audio = InputAudio(PCM16_16K, None, max_seconds=1.0)
    with pytest.raises(InputError):
        audio.append(b"\x00\x01\x02")
    with pytest.raises(InputError):
        audio.append(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    assert audio.buffered_ms == 0


async def test_turn_audio_reaches_stt_at_16k_whatever_came_in() -> None:
    audio = InputAudio(ULAW_8K, None, max_seconds=5.0)
    audio.append(bytes(8000))  # 1 s of 8 kHz mu-law
    turn = audio.take()
    assert len(turn) == 16_000  # PCM16 at the input rate
    assert audio.buffered_ms == 0
    assert len(await to_stt_rate(turn, 8_000)) == 32_000


@pytest.mark.parametrize("seconds", [0.2, 3.0])  # on the loop, and on a worker thread
async def test_to_stt_rate_resamples_short_and_long_turns_alike(seconds: float) -> None:
    tone = speak("Hello there")[: int(seconds * 16_000) * 2]
    at_24k = resample(tone, 16_000, 24_000)
    back = await to_stt_rate(at_24k, 24_000)
    assert back == resample(at_24k, 24_000, 16_000)
    assert abs(len(back) - len(tone)) <= 4
    assert await to_stt_rate(tone, 16_000) is tone
