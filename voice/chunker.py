"""Streaming sentence chunking: LLM text deltas in, speakable chunks out.

TTS sounds best on whole sentences and starts soonest on short ones, so the chunker cuts
the stream at the earliest place a listener would hear a boundary:

- a sentence end (`.`, `!`, `?`, with closing quotes or brackets) followed by whitespace;
- a line break (paragraphs, list items);
- a clause mark (`,` `;` `:` `—` or an ellipsis) followed by whitespace, once the chunk has
  at least `min_clause_chars` characters, so the first audio does not wait for a long
  sentence to finish;
- the last space before `max_chars`, for run-on text with no punctuation at all.

A period does not end a sentence inside a number (3.14), after a title or abbreviation
(Dr., e.g., U.S.) or after a list number at the start of a chunk ("1. Buy milk"). Because
a boundary is only known once the character after it arrives, "Hello." waits for the next
delta (or `flush`). The chunker is pure: no I/O, no clock.
"""

from __future__ import annotations

import re

_TERMINATORS = ".!?…"
_CLOSERS = "\"')]}”’»"
_CLAUSE_MARKS = ",;:—"
# Titles and abbreviations that are followed by more of the same sentence. Words that often
# end a sentence ("etc.", "no.") are deliberately absent: a wrong cut costs prosody, a missed
# one only costs a little latency, so only the unambiguous ones are listed.
_ABBREVIATIONS = frozenset(
    {
        *("mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "vs", "approx", "dept", "est"),
        *("fig", "gen", "col", "lt", "sgt", "capt", "rev", "hon"),
        *("jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"),
    }
)
_DOTTED = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")
_SPEAKABLE = re.compile(r"\w")
SPEECH_CLAUSE_CHARS = 30
"""The clause length a voice reply is first cut at (`voice.pipeline`, `voice.speculation`)."""


class SentenceChunker:
    """Feed text deltas with `push`; call `flush` once the text is complete.

    Chunks are stripped of surrounding whitespace; chunks with nothing to say (only
    punctuation or markup such as ``---``) are dropped.
    """

    def __init__(self, *, min_clause_chars: int = 40, max_chars: int = 300) -> None:
        if min_clause_chars < 1 or max_chars <= min_clause_chars:
            raise ValueError("need 1 <= min_clause_chars < max_chars")
        self.min_clause_chars = min_clause_chars
        self.max_chars = max_chars
        self._buffer = ""
        self._scanned = 0

    def push(self, delta: str) -> list[str]:
        self._buffer += delta
        return self._drain(final=False)

    def flush(self) -> list[str]:
        """Emit everything left, including an unfinished last sentence, and reset."""
        chunks = self._drain(final=True)
        tail = self._buffer
        self._buffer = ""
        self._scanned = 0
        return chunks + _speakable([tail])

    def _drain(self, *, final: bool) -> list[str]:
        chunks: list[str] = []
        while True:
            cut, resume = _find_boundary(self._buffer, self._scanned, self.min_clause_chars, final=final)
            if cut is None and len(self._buffer) > self.max_chars:
                cut = _overflow_cut(self._buffer, self.max_chars)
            if cut is None:
                self._scanned = resume
                return _speakable(chunks)
            chunks.append(self._buffer[:cut])
            self._buffer = self._buffer[cut:]
            self._scanned = 0


def _speakable(chunks: list[str]) -> list[str]:
    stripped = (chunk.strip() for chunk in chunks)
    return [chunk for chunk in stripped if _SPEAKABLE.search(chunk)]


def _find_boundary(text: str, start: int, min_clause: int, *, final: bool) -> tuple[int | None, int]:
    """Return (end of the first chunk or None, where to resume scanning when more text comes)."""
    length = len(text)
    i = start
    while i < length:
        char = text[i]
        if char == "\n":
            if text[:i].strip():
                return i + 1, 0
        elif char in _TERMINATORS:
            end = i
            while end < length and text[end] in _TERMINATORS:
                end += 1
            marks = text[i:end]
            while end < length and text[end] in _CLOSERS:
                end += 1
            if end == length and not final:
                return None, i  # the next character decides
            if end == length or text[end].isspace():
                if _is_ellipsis(marks):
                    if len(text[:end].strip()) >= min_clause:
                        return end, 0
                elif marks != "." or _period_ends_sentence(text, i):
                    return end, 0
            i = end
            continue
        elif char in _CLAUSE_MARKS:
            if i + 1 == length and not final:
                return None, i
            if (i + 1 == length or text[i + 1].isspace()) and len(text[: i + 1].strip()) >= min_clause:
                return i + 1, 0
        i += 1
    return None, length


def _is_ellipsis(marks: str) -> bool:
    return marks == "…" or (len(marks) >= 2 and set(marks) == {"."})


def _period_ends_sentence(text: str, period: int) -> bool:
    word_start = period
    while word_start > 0 and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start:period].lstrip("\"'([{“‘«")
    if not word:
        return True
    if word.lower() in _ABBREVIATIONS or _DOTTED.fullmatch(word):
        return False
    if len(word) == 1 and word.isupper():
        return False  # an initial: "J. R. R. Tolkien"
    # "1. Buy milk": a list number at the start of a chunk is not a sentence.
    return not (word.isdigit() and not text[:word_start].strip())


def _overflow_cut(text: str, max_chars: int) -> int:
    space = text.rfind(" ", 0, max_chars)
    return space + 1 if space > 0 else max_chars
