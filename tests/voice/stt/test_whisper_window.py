"""The fitted-window decoder's pure parts: window size, loop detection, the prompt."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from voice.stt.whisper_window import MARGIN_FRAMES, looks_looped, prompt_tokens, window_frames


@pytest.mark.parametrize(
    ("frames", "window"),
    [
        (1, 100 + MARGIN_FRAMES),
        (100, 100 + MARGIN_FRAMES),
        (477, 500 + MARGIN_FRAMES),
        (2900, 3000),  # never past Whisper's 30 s
        (3000, 3000),
        (3001, None),  # longer clips take the full, chunking path
    ],
)
def test_the_window_is_whole_seconds_plus_a_margin_up_to_thirty(frames: int, window: int | None) -> None:
    assert window_frames(frames) == window


def test_a_loop_is_a_run_of_words_said_twice_or_text_that_compresses_too_well() -> None:
    sentence = "I would like to order two pizzas and a bottle of water."
    assert not looks_looped(sentence)
    assert looks_looped(f"{sentence} {sentence}")
    assert looks_looped("ha " * 40)
    assert not looks_looped("")


@dataclass
class _Tokenizer:
    sot_prev: int = 1
    sot_sequence: tuple[int, ...] = (2, 3, 4)
    no_timestamps: int = 5

    def encode(self, text: str) -> list[int]:
        return [100 + len(word) for word in text.split()]


def test_the_prompt_carries_the_previous_text_before_the_start_of_transcript() -> None:
    tokenizer = _Tokenizer()
    assert prompt_tokens(tokenizer, None, 448) == [2, 3, 4, 5]
    assert prompt_tokens(tokenizer, " Book it. ", 448) == [1, 104, 103, 2, 3, 4, 5]
    # Fewer than half the model's context goes to the previous text (its last tokens kept).
    assert prompt_tokens(tokenizer, "a bb ccc dddd", 8) == [1, 102, 103, 104, 2, 3, 4, 5]
