"""How much silence ends a turn, given what the caller has said so far.

A fixed silence is a poor endpoint: after "What time does the pharmacy close on Sunday?"
500 ms of waiting is pure latency, while after "I'd like a pizza and" it cuts the caller off.
Once a partial transcript exists (decoded at a pause, `voice.partials`), the turn needs:

- `sentence_silence_ms` (at most `silence_duration_ms`) after a complete sentence: the text
  ends in `.`, `?` or `!` and its last word is not one that leads on;
- `continuation_silence_ms` (at least `silence_duration_ms`) after text that trails off: a
  last word that leads on ("and", "but", "because", "the", "um", ...), a comma, a dash or
  an ellipsis;
- `silence_duration_ms` otherwise, and while no partial transcript is known.

Pure: no clock, no state; `tests/voice/test_endpoint_policy.py` pins each case.
"""

from __future__ import annotations

import re

from voice.endpointing import TurnDetectionConfig

LEADING_ON = frozenset(
    {
        *("and", "or", "but", "so", "because", "cause", "if", "then", "when", "while", "that"),
        *("which", "who", "to", "of", "for", "with", "from", "in", "on", "at", "by", "about"),
        *("the", "a", "an", "my", "your", "our", "their", "his", "her", "its", "this", "these"),
        *("is", "are", "was", "were", "be", "i", "we", "you", "um", "uh", "er", "erm", "hmm", "like"),
    }
)
_WORD = re.compile(r"[a-z']+")
_TRAILING = (",", "-", "\u2014", "...", "\u2026", ";", ":")


def ending(text: str) -> str:
    """`"complete"`, `"continues"` or `"unknown"`: how the partial transcript ends."""
    stripped = text.strip()
    if not stripped:
        return "unknown"
    words = _WORD.findall(stripped.lower())
    last = words[-1] if words else ""
    if stripped.endswith(_TRAILING) or last in LEADING_ON:
        return "continues"
    if stripped.endswith((".", "?", "!")) and last:
        return "complete"
    return "unknown"


def silence_needed_ms(partial: str | None, config: TurnDetectionConfig) -> int:
    """The silence after which the turn in progress ends (see the module's rules)."""
    base = config.silence_duration_ms
    if partial is None:
        return base
    kind = ending(partial)
    if kind == "complete":
        return min(base, config.sentence_silence_ms)
    if kind == "continues":
        return max(base, config.continuation_silence_ms)
    return base
