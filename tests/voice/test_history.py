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


def test_messages_follow_changes_and_can_end_with_an_item_not_added_yet() -> None:
    conv = Conversation(max_items=3)
    conv.add(Item("a", "user", "audio", "hello"))
    conv.add(Item("b", "assistant", "audio", "Hi there.", response_id="r1"))
    before = conv.messages(None)
    conv.replace(Item("a", "user", "audio", "hello again"))
    heard = Item("c", "user", "audio", "book a table")
    after = conv.messages(None, then=heard)
    assert [m.text for m in after] == ["hello again", "Hi there.", "book a table"]
    assert after[1] is before[1]  # unchanged items' messages are reused
    assert "c" not in conv
    conv.add(heard)
    conv.add(Item("d", "assistant", "audio", "Done.", response_id="r2"))  # "a" is forgotten
    assert [m.text for m in conv.messages(None)] == ["Hi there.", "book a table", "Done."]


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


def test_find_call_finds_a_function_call_by_its_call_id() -> None:
    conv = Conversation()
    conv.add(Item("f", "assistant", "function_call", "{}", call_id="call_1", name="get_weather"))
    conv.add(Item("o", "tool", "function_call_output", "ok", call_id="call_2"))
    found = conv.find_call("call_1")
    assert found is not None and found.id == "f"
    assert conv.find_call("call_2") is None  # an output is not a call
    conv.delete("f")
    assert conv.find_call("call_1") is None
