"""A voice session's conversation: ordered items, and what the caller really heard.

Items are immutable; filling in a transcript or truncating replaces the item. Assistant
audio items remember which text each stretch of audio carried (`Span`), so when the client
reports how much it played (`truncate(item_id, audio_end_ms)`, after a barge-in) the
history keeps only the words the caller could have heard, and the next turn's LLM does not
believe it said the rest.

Function calls are items too: the model's calls (`function_call`, with its `call_id`, `name`
and JSON `arguments`) and the client's results (`function_call_output`). How they become
chat messages is `voice.messages`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from providers.types import NO_REASONING, Message, Reasoning
from voice.messages import MessageMemo, to_messages

MessageRole = Literal["user", "assistant", "system"]
ItemRole = MessageRole | Literal["tool"]
"""`tool` is the role of function call outputs."""
ItemKind = Literal["audio", "text", "function_call", "function_call_output"]
ItemStatus = Literal["completed", "incomplete", "in_progress"]


class HistoryError(LookupError):
    """An item id the conversation does not hold, or an operation it does not allow."""


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    role: ItemRole
    kind: ItemKind
    text: str = ""
    """The transcript of an audio item, the text of a text item, a function call's arguments
    (JSON text) or a function call output's output."""
    status: ItemStatus = "completed"
    call_id: str | None = None
    """For function calls and their outputs: the tool call id the two share."""
    name: str | None = None
    """For function calls: the function called."""
    response_id: str | None = None
    """For items a response produced: its message and its calls are one assistant turn."""
    reasoning: Reasoning = NO_REASONING
    """For function calls: the reasoning the model produced with them, which some providers
    require back with the calls (Kimi's `reasoning_content`, Gemini's signatures)."""


@dataclass(frozen=True, slots=True)
class Span:
    """`text` was spoken by the audio from `start_ms` to `end_ms` of its item."""

    text: str
    start_ms: float
    end_ms: float


def heard_text(spans: list[Span], audio_end_ms: float) -> str:
    """The text of the spans played up to `audio_end_ms`; a span cut mid-way keeps its
    share of words (characters are proportional enough to speaking time for a history)."""
    parts: list[str] = []
    for span in spans:
        if span.start_ms >= audio_end_ms:
            break
        if span.end_ms <= audio_end_ms or span.end_ms <= span.start_ms:
            parts.append(span.text)
            continue
        share = (audio_end_ms - span.start_ms) / (span.end_ms - span.start_ms)
        cut = span.text[: int(len(span.text) * share)]
        # Keep whole words only: half a word in the history reads as a typo to the LLM.
        cut = cut.rsplit(" ", 1)[0] if " " in cut and not cut.endswith(" ") else cut
        parts.append(cut.strip())
        break
    return " ".join(p for p in parts if p)


class Conversation:
    """At most `max_items` items: the oldest are forgotten first (they also leave the LLM's context)."""

    def __init__(self, *, max_items: int = 200) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.max_items = max_items
        self._items: dict[str, Item] = {}
        self._spans: dict[str, list[Span]] = {}
        self._memo = MessageMemo()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    @property
    def items(self) -> tuple[Item, ...]:
        return tuple(self._items.values())

    @property
    def last_id(self) -> str | None:
        return next(reversed(self._items), None) if self._items else None

    def get(self, item_id: str) -> Item:
        try:
            return self._items[item_id]
        except KeyError:
            raise HistoryError(f"no item {item_id!r}") from None

    def add(self, item: Item, previous_item_id: str | None = None) -> str | None:
        """Append `item` (or insert it after `previous_item_id`); returns the id before it."""
        if item.id in self._items:
            raise HistoryError(f"item {item.id!r} already exists")
        if previous_item_id is None or previous_item_id == self.last_id:
            previous = self.last_id
            self._items[item.id] = item
        else:
            if previous_item_id not in self._items:
                raise HistoryError(f"no item {previous_item_id!r}")
            ordered = list(self._items.items())
            at = next(i for i, (key, _) in enumerate(ordered) if key == previous_item_id) + 1
            ordered.insert(at, (item.id, item))
            self._items = dict(ordered)
            previous = previous_item_id
        while len(self._items) > self.max_items:
            oldest = next(iter(self._items))
            del self._items[oldest]
            self._spans.pop(oldest, None)
        return previous

    def replace(self, item: Item) -> None:
        """Swap in a new version of an existing item (a filled-in transcript, say); a no-op
        when the item is gone (deleted by the client while its transcript was pending)."""
        if item.id in self._items:
            self._items[item.id] = item

    def delete(self, item_id: str) -> None:
        self.get(item_id)
        del self._items[item_id]
        self._spans.pop(item_id, None)

    def find_call(self, call_id: str) -> Item | None:
        """The function call item with `call_id`, if the conversation still holds it."""
        return next(
            (i for i in self._items.values() if i.kind == "function_call" and i.call_id == call_id), None
        )

    def add_span(self, item_id: str, span: Span) -> None:
        if item_id in self._items:
            self._spans.setdefault(item_id, []).append(span)

    def audio_ms(self, item_id: str) -> float:
        """How much audio has been spoken of an assistant item (0 for any other item)."""
        spans = self._spans.get(item_id)
        return spans[-1].end_ms if spans else 0.0

    def truncate(self, item_id: str, audio_end_ms: int) -> Item:
        """Keep the part of an assistant audio item's transcript heard by `audio_end_ms`."""
        item = self.get(item_id)
        if item.role != "assistant" or item.kind != "audio":
            raise HistoryError(f"item {item_id!r} is not assistant audio")
        spans = self._spans.get(item_id, [])
        played = self.audio_ms(item_id)
        if audio_end_ms > played + 1:
            raise HistoryError(f"audio_end_ms {audio_end_ms} is past the item's {int(played)} ms of audio")
        truncated = replace(item, text=heard_text(spans, audio_end_ms), status="incomplete")
        self._items[item_id] = truncated
        self._spans[item_id] = [s for s in spans if s.start_ms < audio_end_ms]
        return truncated

    def messages(self, instructions: str | None, *, then: Item | None = None) -> tuple[Message, ...]:
        """The conversation as chat messages (see `voice.messages.to_messages`), followed by
        `then` when given (an item not in the conversation yet: a speculated turn). Messages
        built for the previous call are reused, so a turn builds only its new ones."""
        items = self._items.values() if then is None else (*self._items.values(), then)
        return to_messages(items, instructions, self._memo)
