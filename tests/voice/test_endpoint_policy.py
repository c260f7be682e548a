"""The endpointing silence chosen from a partial transcript (a pure function)."""

from __future__ import annotations

import pytest

from voice.endpoint_policy import ending, silence_needed_ms
from voice.endpointing import TurnDetectionConfig

CONFIG = TurnDetectionConfig(silence_duration_ms=500, sentence_silence_ms=300, continuation_silence_ms=1000)


@pytest.mark.parametrize(
    ("partial", "kind"),
    [
        ("What time does the pharmacy close on Sunday?", "complete"),
        ("Book it.", "complete"),
        ("Wow!", "complete"),
        ("I would like two pizzas and", "continues"),
        ("I would like two pizzas and.", "continues"),  # Whisper's period after a trailing "and"
        ("Send it to the", "continues"),
        ("Well, um", "continues"),
        ("I think,", "continues"),
        ("Let me see...", "continues"),
        ("Let me see\u2026", "continues"),
        ("two large pizzas", "unknown"),
        ("", "unknown"),
        ("   ", "unknown"),
        ("?", "unknown"),
    ],
)
def test_how_a_partial_transcript_ends(partial: str, kind: str) -> None:
    assert ending(partial) == kind


@pytest.mark.parametrize(
    ("partial", "needed"),
    [
        (None, 500),  # nothing decoded yet: the configured silence
        ("Can you turn off the lights?", 300),
        ("Turn off the lights and", 1000),
        ("turn off the lights", 500),
    ],
)
def test_the_silence_needed_follows_the_ending(partial: str | None, needed: int) -> None:
    assert silence_needed_ms(partial, CONFIG) == needed


def test_the_configured_silence_bounds_both_sides() -> None:
    # A client that asked for 200 ms keeps it after a sentence; one that asked for 1500 ms is
    # never cut shorter by a trailing "and".
    short = TurnDetectionConfig(silence_duration_ms=200, sentence_silence_ms=300)
    assert silence_needed_ms("Done.", short) == 200
    patient = TurnDetectionConfig(silence_duration_ms=1500, continuation_silence_ms=1000)
    assert silence_needed_ms("and", patient) == 1500
    assert silence_needed_ms("Done.", patient) == 300


def test_negative_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="sentence_silence_ms"):
        TurnDetectionConfig(sentence_silence_ms=-1)
