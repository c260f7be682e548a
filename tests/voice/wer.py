"""Word error rate: word-level edit distance over normalised words, divided by the
reference length. Normalisation lowercases, drops punctuation and spells out small numbers,
so "Book a table for 4." and "book a table for four" are the same words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_NUMBERS = (
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    *("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen"),
    *("nineteen", "twenty"),
)
_WORD = re.compile(r"[a-z0-9']+")


def normalise(text: str) -> list[str]:
    words = _WORD.findall(text.lower().replace("-", " "))
    return [_NUMBERS[int(w)] if w.isdigit() and int(w) < len(_NUMBERS) else w.strip("'") for w in words]


def edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Substitutions + deletions + insertions turning `reference` into `hypothesis`."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, 1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word)))
        previous = current
    return previous[-1]


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER: total word errors over total reference words."""
    if len(references) != len(hypotheses):
        raise ValueError("one hypothesis per reference")
    errors = sum(
        edit_distance(normalise(r), normalise(h)) for r, h in zip(references, hypotheses, strict=True)
    )
    words = sum(len(normalise(r)) for r in references)
    if not words:
        raise ValueError("references contain no words")
    return errors / words
