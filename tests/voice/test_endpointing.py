from __future__ import annotations

import random

import numpy as np
import pytest

from tests.voice.speech import SENTENCES, ms_of, silence, speak
from voice.endpointing import (
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    SpeechStopped,
    TurnDetectionConfig,
    TurnDetector,
    TurnEvent,
)

START_TOLERANCE_MS = 60
# webrtcvad hangs on for a frame or several after the last audible sample.
END_TOLERANCE_MS = 200


def audible_extent_ms(pcm: bytes) -> tuple[int, int]:
    """Where the clip is audible, by amplitude alone: the ground truth the VAD must match."""
    loud = np.nonzero(np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.int32)) > 300)[0]
    return int(loud[0]) * 1000 // 16_000, int(loud[-1]) * 1000 // 16_000


def conversation(gaps_ms: list[int]) -> tuple[bytes, list[tuple[int, int]]]:
    """Sentences separated by silences; returns the audio and each sentence's audible span."""
    audio = b""
    truth: list[tuple[int, int]] = []
    for gap, sentence in zip(gaps_ms, SENTENCES, strict=False):
        audio += silence(gap)
        clip = speak(sentence)
        start, end = audible_extent_ms(clip)
        truth.append((ms_of(audio) + start, ms_of(audio) + end))
        audio += clip
    return audio + silence(1500), truth


def feed_in_random_chunks(
    detector: TurnDetector, audio: bytes, seed: int, max_chunk: int = 3000
) -> list[TurnEvent]:
    rng = random.Random(seed)
    events: list[TurnEvent] = []
    offset = 0
    while offset < len(audio):
        size = rng.randint(1, max_chunk)
        events += detector.feed(audio[offset : offset + size])
        offset += size
    return events


@pytest.mark.parametrize("seed", [1, 2])
def test_a_thirty_second_conversation_yields_one_turn_per_sentence(seed: int) -> None:
    audio, truth = conversation([1200, 900, 1500, 1000, 1300, 800])
    assert ms_of(audio) > 25_000
    config = TurnDetectionConfig()
    events = feed_in_random_chunks(TurnDetector(config), audio, seed)

    assert [type(e) for e in events] == [SpeechStarted, SpeechStopped] * len(truth)
    for (started, stopped), (first_audible, last_audible) in zip(
        zip(events[::2], events[1::2], strict=True), truth, strict=True
    ):
        assert isinstance(started, SpeechStarted) and isinstance(stopped, SpeechStopped)
        assert abs(started.speech_start_ms - first_audible) <= START_TOLERANCE_MS
        assert started.audio_start_ms == started.speech_start_ms - config.prefix_padding_ms
        assert 0 <= stopped.speech_end_ms - last_audible <= END_TOLERANCE_MS
        assert stopped.audio_end_ms == stopped.speech_end_ms + config.silence_duration_ms


def test_events_do_not_depend_on_chunking() -> None:
    audio = silence(400) + speak(SENTENCES[3]) + silence(700)
    whole = TurnDetector().feed(audio)
    assert len(whole) == 2
    assert feed_in_random_chunks(TurnDetector(), audio, seed=5, max_chunk=7) == whole


def test_prefix_padding_never_reaches_before_the_start_of_audio() -> None:
    events = TurnDetector(TurnDetectionConfig(prefix_padding_ms=300)).feed(silence(100) + speak(SENTENCES[0]))
    started = events[0]
    assert isinstance(started, SpeechStarted)
    assert started.speech_start_ms >= 100
    assert started.audio_start_ms == 0


def audible(pcm: bytes) -> bytes:
    start, end = audible_extent_ms(pcm)
    return pcm[start * 32 : (end + 1) * 32]


def test_a_short_pause_inside_a_turn_does_not_end_it() -> None:
    first, second = audible(speak(SENTENCES[3])), audible(speak(SENTENCES[2]))
    audio = silence(500) + first + silence(400) + second + silence(1000)
    assert [type(e) for e in TurnDetector().feed(audio)] == [SpeechStarted, SpeechStopped]
    shorter_patience = TurnDetector(TurnDetectionConfig(silence_duration_ms=200)).feed(audio)
    assert [type(e) for e in shorter_patience] == [SpeechStarted, SpeechStopped] * 2


def test_sounds_shorter_than_the_minimum_speech_are_ignored() -> None:
    clip = speak(SENTENCES[0])
    start, _ = audible_extent_ms(clip)
    blip = clip[start * 32 : (start + 60) * 32]  # 60 ms of a spoken vowel
    audio = silence(500) + blip + silence(1000)
    assert TurnDetector(TurnDetectionConfig(min_speech_ms=200)).feed(audio) == []
    assert [type(e) for e in TurnDetector(TurnDetectionConfig(min_speech_ms=20)).feed(audio)] == [
        SpeechStarted,
        SpeechStopped,
    ]


def test_finish_closes_an_open_turn_and_reset_forgets_it() -> None:
    detector = TurnDetector()
    events = detector.feed(silence(200) + speak(SENTENCES[1]))
    assert [type(e) for e in events] == [SpeechStarted]
    assert detector.speaking
    [stopped] = detector.finish()
    assert isinstance(stopped, SpeechStopped)
    assert stopped.audio_end_ms == detector.position_ms
    assert detector.finish() == []

    detector.feed(speak(SENTENCES[1])[:32_000])
    assert detector.speaking
    position = detector.position_ms
    detector.reset()
    assert not detector.speaking
    assert detector.position_ms == position
    assert detector.feed(silence(1000)) == []


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        TurnDetectionConfig(silence_duration_ms=-1)
    with pytest.raises(ValueError):
        TurnDetectionConfig(threshold=2.0)


def test_pauses_are_reported_once_each_only_when_asked_for() -> None:
    audio = silence(200) + speak(SENTENCES[3]) + silence(700)
    config = TurnDetectionConfig(pause_ms=100)
    assert not any(isinstance(e, SpeechPaused) for e in TurnDetector(config).feed(audio))
    events = TurnDetector(config, pauses=True).feed(audio)
    pauses = [e for e in events if isinstance(e, SpeechPaused)]
    stopped = events[-1]
    assert isinstance(stopped, SpeechStopped) and pauses
    # The last pause is the turn's end of speech, reported 100 ms into its silence.
    assert pauses[-1].speech_end_ms == stopped.speech_end_ms


def test_the_silence_of_the_turn_in_progress_can_be_changed() -> None:
    clip = speak(SENTENCES[3])
    detector = TurnDetector(TurnDetectionConfig(silence_duration_ms=500), pauses=True)
    detector.feed(silence(200) + clip + silence(200))
    assert detector.speaking and detector.silence_ms >= 200
    detector.set_silence_ms(1000)
    stopped = [e for e in detector.feed(silence(1200)) if isinstance(e, SpeechStopped)]
    assert len(stopped) == 1 and stopped[0].audio_end_ms - stopped[0].speech_end_ms == 1000
    # The next turn starts from the configured silence again.
    events = detector.feed(clip + silence(520))
    stopped = [e for e in events if isinstance(e, SpeechStopped)]
    assert stopped and stopped[0].audio_end_ms - stopped[0].speech_end_ms == 500


def test_speech_after_a_pause_restores_the_configured_silence() -> None:
    clip = speak(SENTENCES[3])
    detector = TurnDetector(TurnDetectionConfig(silence_duration_ms=500, pause_ms=100), pauses=True)
    detector.feed(silence(200) + clip + silence(120))
    detector.set_silence_ms(2000)
    events = detector.feed(clip + silence(520))
    stopped = [e for e in events if isinstance(e, SpeechStopped)]
    assert stopped and stopped[0].audio_end_ms - stopped[0].speech_end_ms == 500


def test_speech_after_a_pause_is_reported_as_resumed_with_the_pause_it_ends() -> None:
    clip = speak(SENTENCES[3])
    detector = TurnDetector(TurnDetectionConfig(silence_duration_ms=800, pause_ms=100), pauses=True)
    pauses = [e for e in detector.feed(silence(200) + clip + silence(300)) if isinstance(e, SpeechPaused)]
    events = detector.feed(clip + silence(1000))
    resumed = [e for e in events if isinstance(e, SpeechResumed)]
    assert resumed and resumed[0].speech_end_ms == pauses[-1].speech_end_ms
    assert isinstance(events[-1], SpeechStopped)
    # Without pauses asked for, speech again within a turn is nothing to report.
    quiet = TurnDetector(TurnDetectionConfig(silence_duration_ms=800), pauses=False)
    events = quiet.feed(silence(200) + clip + silence(300) + clip + silence(1000))
    assert not any(isinstance(e, SpeechResumed | SpeechPaused) for e in events)
