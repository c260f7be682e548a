from __future__ import annotations

import pytest

from tests.voice.wer import edit_distance, normalise, word_error_rate


def test_normalise_ignores_case_punctuation_and_digits() -> None:
    assert normalise("Book a table for 4, at 8 o'clock!") == [
        "book",
        "a",
        "table",
        "for",
        "four",
        "at",
        "eight",
        "o'clock",
    ]
    assert normalise("Well-known") == ["well", "known"]


@pytest.mark.parametrize(
    ("reference", "hypothesis", "distance"),
    [
        ("a b c", "a b c", 0),
        ("a b c", "a x c", 1),  # substitution
        ("a b c", "a c", 1),  # deletion
        ("a b c", "a b b c", 1),  # insertion
        ("a b c", "", 3),
        ("", "a b", 2),
        ("the cat sat", "cat sat on", 2),
    ],
)
def test_edit_distance_counts_each_kind_of_error(reference: str, hypothesis: str, distance: int) -> None:
    assert edit_distance(reference.split(), hypothesis.split()) == distance


def test_corpus_wer_weights_by_reference_length() -> None:
    references = ["one two three four", "five six"]
    assert word_error_rate(references, ["one two three four", "five seven"]) == pytest.approx(1 / 6)
    assert word_error_rate(references, ["1 2 3 4.", "Five, six!"]) == 0.0
    with pytest.raises(ValueError):
        word_error_rate(references, ["only one"])
