from __future__ import annotations

import pytest

from voice.chunker import SentenceChunker


def chunk(text: str, step: int = 1, **options: int) -> list[str]:
    """Stream `text` in deltas of `step` characters, then flush."""
    chunker = SentenceChunker(**options)
    out: list[str] = []
    for offset in range(0, len(text), step):
        out += chunker.push(text[offset : offset + step])
    return out + chunker.flush()


@pytest.mark.parametrize("step", [1, 2, 5, 1000])
def test_splits_sentences_whatever_the_delta_size(step: int) -> None:
    text = "Hello there! How are you today? I am fine. Thanks for asking."
    assert chunk(text, step) == ["Hello there!", "How are you today?", "I am fine.", "Thanks for asking."]


def test_a_sentence_is_emitted_as_soon_as_the_next_character_shows_it_ended() -> None:
    chunker = SentenceChunker()
    assert chunker.push("Sure thing.") == []  # "thing." might still be "thing.com"
    assert chunker.push(" Let") == ["Sure thing."]
    assert chunker.push(" me check") == []
    assert chunker.flush() == ["Let me check"]
    assert chunker.flush() == []


def test_abbreviations_and_initials_do_not_end_sentences() -> None:
    text = "Dr. Smith met Mr. Jones at 5 p.m. in the U.S. office, e.g. for lunch. J. R. R. Tolkien wrote it."
    assert chunk(text, min_clause_chars=200) == [
        "Dr. Smith met Mr. Jones at 5 p.m. in the U.S. office, e.g. for lunch.",
        "J. R. R. Tolkien wrote it.",
    ]


def test_decimals_urls_and_times_stay_whole() -> None:
    text = "Pi is 3.14159 and the fee is $2.50 per month. Visit example.com at 10:30 today."
    assert chunk(text, 3) == [
        "Pi is 3.14159 and the fee is $2.50 per month.",
        "Visit example.com at 10:30 today.",
    ]


def test_a_number_can_still_end_a_sentence() -> None:
    assert chunk("The answer is 42. Next question?") == ["The answer is 42.", "Next question?"]


def test_newlines_and_numbered_lists() -> None:
    text = "Here is the plan:\n1. Buy milk\n2. Get eggs\n\nThat is all"
    assert chunk(text, 4) == ["Here is the plan:", "1. Buy milk", "2. Get eggs", "That is all"]


def test_ellipses_are_clause_breaks_not_sentence_breaks() -> None:
    assert chunk("Well... I suppose so.") == ["Well... I suppose so."]
    long_lead = "I have been thinking about this for a long while… and the answer is yes."
    assert chunk(long_lead) == ["I have been thinking about this for a long while…", "and the answer is yes."]
    assert chunk("Wait for it...", 2) == ["Wait for it..."]


def test_long_clauses_are_cut_early_short_ones_are_not() -> None:
    text = "Short, sweet. But this sentence has a rather long opening clause, and then it carries on; fine."
    assert chunk(text, 3, min_clause_chars=40) == [
        "Short, sweet.",
        "But this sentence has a rather long opening clause,",
        "and then it carries on; fine.",
    ]


def test_closing_quotes_and_brackets_stay_with_their_sentence() -> None:
    assert chunk('He said "stop." Then he left (quietly.) The end') == [
        'He said "stop."',
        "Then he left (quietly.)",
        "The end",
    ]


def test_run_on_text_is_cut_at_a_space_before_max_chars() -> None:
    text = " ".join(["word"] * 40)  # 199 characters, no punctuation
    chunks = chunk(text, 7, min_clause_chars=10, max_chars=50)
    assert all(len(c) <= 50 for c in chunks)
    assert " ".join(chunks) == text
    assert all(not c.endswith("wor") for c in chunks)


def test_unspeakable_chunks_are_dropped() -> None:
    assert chunk("Title\n---\n**\nBody text.") == ["Title", "Body text."]
    assert chunk("   \n\n  ") == []


def test_options_are_checked() -> None:
    with pytest.raises(ValueError):
        SentenceChunker(min_clause_chars=50, max_chars=40)
