"""The conversation: order, insertion, limits, and truncation to what the caller heard."""

from __future__ import annotations

import pytest

from providers.types import Role
from voice.history import Conversation, HistoryError, Item, Span, heard_text


def test_order_insertion_and_previous_ids() -> None:
    conv = Conversation()
    assert conv.add(Item("a", "user", "text", "one")) is None
    assert conv.add(Item("c", "user", "text", "three")) == "a"
    assert conv.add(Item("b", "assistant", "text", "two"), previous_item_id="a") == "a"
    assert [i.id for i in conv.items] == ["a", "b", "c"]
    with pytest.raises(HistoryError):
        conv.add(Item("d", "user", "text"), previous_item_id="zz")
    with pytest.raises(HistoryError):
        conv.add(Item("a", "user", "text"))


def test_oldest_items_are_forgotten_past_the_limit() -> None:
    conv = Conversation(max_items=2)
    for name in "abc":
        conv.add(Item(name, "user", "text", name))
    assert [i.id for i in conv.items] == ["b", "c"]


def test_messages_skip_pending_and_empty_items() -> None:
    conv = Conversation()
    conv.add(Item("a", "user", "audio", status="in_progress"))
    conv.add(Item("b", "user", "text", "hello"))
    conv.add(Item("c", "assistant", "audio", ""))
    messages = conv.messages("Be kind.")
    assert [(m.role, m.text) for m in messages] == [(Role.SYSTEM, "Be kind."), (Role.USER, "hello")]


def test_heard_text_cuts_on_word_boundaries() -> None:
    spans = [Span("Sure thing.", 0, 1000), Span("Your table is booked for two.", 1000, 2000)]
    assert heard_text(spans, 2000) == "Sure thing. Your table is booked for two."
    assert heard_text(spans, 1000) == "Sure thing."
    assert heard_text(spans, 1500) == "Sure thing. Your table is"
    assert heard_text(spans, 0) == ""


def test_truncate_only_assistant_audio_and_only_within_it() -> None:
    conv = Conversation()
    conv.add(Item("u", "user", "text", "hi"))
    conv.add(Item("a", "assistant", "audio", "Sure thing. Your table is booked."))
    conv.add_span("a", Span("Sure thing.", 0, 800))
    conv.add_span("a", Span("Your table is booked.", 800, 1600))
    truncated = conv.truncate("a", 800)
    assert truncated.text == "Sure thing." and truncated.status == "incomplete"
    with pytest.raises(HistoryError):
        conv.truncate("u", 10)
    with pytest.raises(HistoryError):
        conv.truncate("a", 5000)
