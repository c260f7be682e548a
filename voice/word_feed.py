"""The reply's text as a streamed TTS connection takes it: whole words as the LLM writes them,
with the sentence chunker's cuts marked, so the caller can flush a sentence where that helps.

The voice pipeline puts each LLM text delta on the reply's chunk queue as `Written`, followed
by the chunks the sentence chunker cut from it (the per-sentence path speaks the chunks and
skips the `Written`). `WordFeed` turns the `Written` text into pieces that end after a word
(a word still being written waits for the whitespace after it) and marks where each chunk
ends: every chunk is a stripped slice of the written text, in order, so its end is found by
searching forward. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Written:
    """An LLM text delta, as written (before the sentence chunker cuts it)."""

    text: str


@dataclass(frozen=True, slots=True)
class Piece:
    text: str
    """Raw text (the stream normalises its whitespace); "" for a boundary already sent."""
    boundary: bool
    """The piece ends where the chunker cut (a sentence or clause end)."""


class WordFeed:
    def __init__(self) -> None:
        self._raw = ""
        self._sent = 0
        self._found = 0
        self._cuts: list[int] = []

    def write(self, text: str) -> None:
        self._raw += text

    def cut(self, chunk: str) -> None:
        """The chunker cut `chunk` (stripped) from what was written: a boundary at its end."""
        at = self._raw.find(chunk, self._found)
        if at >= 0:
            self._found = at + len(chunk)
            self._cuts.append(self._found)

    def take(self, *, final: bool = False) -> list[Piece]:
        """What can be sent now: up to each boundary, then up to the last whole word (with
        `final`, everything written)."""
        pieces: list[Piece] = []
        for cut in self._cuts:
            pieces.append(Piece(self._raw[self._sent : cut] if cut > self._sent else "", True))
            self._sent = max(self._sent, cut)
        self._cuts.clear()
        end = len(self._raw) if final else _after_last_space(self._raw, self._sent)
        if end > self._sent:
            rest = self._raw[self._sent : end]
            self._sent = end
            if rest.strip():
                pieces.append(Piece(rest, False))
        return pieces


def _after_last_space(text: str, start: int) -> int:
    """The index after the last whitespace character of `text[start:]` (`start` if none)."""
    for i in range(len(text) - 1, start - 1, -1):
        if text[i].isspace():
            return i + 1
    return start
