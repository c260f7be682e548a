from __future__ import annotations

import random

import pytest

from tests.voice.speech import SENTENCES, silence, speak
from voice.vad import VoiceActivityDetector, mode_for_threshold


def test_silence_is_not_speech_and_spoken_words_are() -> None:
    vad = VoiceActivityDetector()
    assert not any(vad.process(silence(1000)))
    verdicts = vad.process(speak(SENTENCES[0]))
    # Pauses between words are unvoiced; a sentence is still mostly speech.
    assert 0.6 < sum(verdicts) / len(verdicts) < 1.0


def test_arbitrary_chunks_give_the_same_frames_as_whole_audio() -> None:
    audio = silence(300) + speak(SENTENCES[3]) + silence(300)
    whole = VoiceActivityDetector().process(audio)
    assert len(whole) == len(audio) // 640

    chunked = VoiceActivityDetector()
    rng = random.Random(11)
    verdicts: list[bool] = []
    offset = 0
    while offset < len(audio):
        size = rng.randint(1, 1500)
        verdicts += chunked.process(audio[offset : offset + size])
        offset += size
    assert verdicts == whole
    assert chunked.pending_bytes == len(audio) % 640


def test_whole_frames_and_partial_chunks_mixed_give_the_same_frames() -> None:
    """Whole 20 ms frames skip the buffer; a partial chunk in between must still line up."""
    audio = speak(SENTENCES[1]) + silence(200)
    whole = VoiceActivityDetector().process(audio)
    mixed = VoiceActivityDetector()
    sizes = [640, 640, 100, 540, 640, 1280, 7, 633, 640]
    verdicts: list[bool] = []
    offset = 0
    for size in sizes * (len(audio) // sum(sizes) + 1):
        verdicts += mixed.process(audio[offset : offset + size])
        offset += size
    assert verdicts == whole[: len(verdicts)]
    assert len(verdicts) == len(whole)


def test_partial_frames_wait_and_reset_drops_them() -> None:
    vad = VoiceActivityDetector()
    assert vad.process(b"\x00" * 639) == []
    assert vad.pending_bytes == 639
    assert vad.process(b"\x00") == [False]
    vad.process(b"\x00" * 100)
    vad.reset()
    assert vad.pending_bytes == 0


def test_other_rates_use_their_own_frame_size() -> None:
    assert VoiceActivityDetector(sample_rate=8_000).frame_bytes == 320
    with pytest.raises(ValueError):
        VoiceActivityDetector(sample_rate=22_050)
    with pytest.raises(ValueError):
        VoiceActivityDetector(mode=4)


@pytest.mark.parametrize(("threshold", "mode"), [(0.0, 0), (0.3, 1), (0.5, 2), (0.8, 3), (1.0, 3)])
def test_threshold_maps_to_webrtc_mode(threshold: float, mode: int) -> None:
    assert mode_for_threshold(threshold) == mode


def test_threshold_out_of_range_is_rejected() -> None:
    with pytest.raises(ValueError):
        mode_for_threshold(1.5)
