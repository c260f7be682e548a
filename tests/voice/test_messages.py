"""The conversation as chat messages: function calls, their results, and the order providers need."""

from __future__ import annotations

from providers.types import Message, Role, ToolCall
from voice.history import Item, ItemStatus
from voice.messages import MessageMemo, to_messages


def user(item_id: str, text: str) -> Item:
    return Item(item_id, "user", "text", text)


def said(item_id: str, text: str, response_id: str | None = None) -> Item:
    return Item(item_id, "assistant", "audio", text, response_id=response_id)


def call(
    item_id: str,
    call_id: str,
    arguments: str = "{}",
    *,
    response_id: str | None = None,
    status: ItemStatus = "completed",
) -> Item:
    return Item(
        item_id,
        "assistant",
        "function_call",
        arguments,
        status=status,
        call_id=call_id,
        name="get_weather",
        response_id=response_id,
    )


def result(item_id: str, call_id: str, output: str) -> Item:
    return Item(item_id, "tool", "function_call_output", output, call_id=call_id)


def shape(messages: tuple[Message, ...]) -> list[tuple[str, str, tuple[str, ...], str | None]]:
    return [(m.role.value, m.text, tuple(c.id for c in m.tool_calls), m.tool_call_id) for m in messages]


def test_a_responses_words_and_calls_are_one_assistant_message_followed_by_the_results() -> None:
    items = [
        user("u1", "Weather in Paris and Rome?"),
        said("m1", "Let me check.", "resp_1"),
        call("f1", "call_a", '{"city": "Paris"}', response_id="resp_1"),
        call("f2", "call_b", '{"city": "Rome"}', response_id="resp_1"),
        result("o2", "call_b", "18C"),
        result("o1", "call_a", "21C"),
    ]
    messages = to_messages(items, "Be brief.")
    assert shape(messages) == [
        ("system", "Be brief.", (), None),
        ("user", "Weather in Paris and Rome?", (), None),
        ("assistant", "Let me check.", ("call_a", "call_b"), None),
        ("tool", "21C", (), "call_a"),
        ("tool", "18C", (), "call_b"),
    ]
    assert messages[2].tool_calls[0] == ToolCall("call_a", "get_weather", '{"city": "Paris"}')


def test_a_result_added_after_later_items_still_follows_its_call() -> None:
    items = [
        user("u1", "Book it."),
        call("f1", "call_a", response_id="resp_1"),
        user("u2", "Hello?"),  # the caller spoke before the client sent the result
        result("o1", "call_a", "booked"),
    ]
    assert shape(to_messages(items, None)) == [
        ("user", "Book it.", (), None),
        ("assistant", "", ("call_a",), None),
        ("tool", "booked", (), "call_a"),
        ("user", "Hello?", (), None),
    ]


def test_calls_without_a_result_and_results_without_a_call_are_left_out() -> None:
    items = [
        user("u1", "Two things."),
        said("m1", "Checking.", "resp_1"),
        call("f1", "call_open", response_id="resp_1"),  # never answered
        call("f2", "call_cut", '{"ci', response_id="resp_1", status="incomplete"),  # barge-in
        result("o2", "call_cut", "too late"),
        result("o3", "call_gone", "its call was deleted"),
    ]
    assert shape(to_messages(items, None)) == [
        ("user", "Two things.", (), None),
        ("assistant", "Checking.", (), None),
    ]


def test_a_call_answered_twice_takes_the_latest_answer_once() -> None:
    items = [call("f1", "call_a"), result("o1", "call_a", "first"), result("o2", "call_a", "second")]
    assert shape(to_messages(items, None)) == [
        ("assistant", "", ("call_a",), None),
        ("tool", "second", (), "call_a"),
    ]


def test_separate_responses_stay_separate_and_client_calls_join_the_message_before_them() -> None:
    items = [
        said("m1", "Hello.", "resp_1"),
        call("f1", "call_a", response_id="resp_2"),
        result("o1", "call_a", "ok"),
        Item("m2", "assistant", "text", "Restored reply."),  # a client restoring its history
        call("f2", "call_b"),
        result("o2", "call_b", "ok"),
    ]
    assert shape(to_messages(items, None)) == [
        ("assistant", "Hello.", (), None),
        ("assistant", "", ("call_a",), None),
        ("tool", "ok", (), "call_a"),
        ("assistant", "Restored reply.", ("call_b",), None),
        ("tool", "ok", (), "call_b"),
    ]


def test_words_after_a_call_in_the_same_response_join_its_message() -> None:
    items = [
        call("f1", "call_a", response_id="resp_1"),
        said("m1", "One moment.", "resp_1"),
        result("o1", "call_a", "ok"),
    ]
    messages = to_messages(items, None)
    assert shape(messages) == [("assistant", "One moment.", ("call_a",), None), ("tool", "ok", (), "call_a")]
    assert messages[1].role is Role.TOOL


def test_items_being_written_and_empty_replies_are_skipped() -> None:
    items = [
        user("u1", "Hi"),
        said("m1", "", "resp_1"),
        Item("m2", "assistant", "audio", "Half", status="in_progress", response_id="resp_2"),
        call("f1", "call_a", response_id="resp_2", status="in_progress"),
        result("o1", "call_a", "early"),
    ]
    assert shape(to_messages(items, None)) == [("user", "Hi", (), None)]


def test_a_memo_reuses_the_messages_of_the_last_build_and_builds_the_same_messages() -> None:
    items = [
        user("u1", "Weather in Paris?"),
        said("m1", "Let me check.", "resp_1"),
        call("f1", "call_a", '{"city": "Paris"}', response_id="resp_1"),
        result("o1", "call_a", "21C"),
        said("m2", "It is 21 degrees.", "resp_2"),
    ]
    memo = MessageMemo()
    first = to_messages(items, "Be brief.", memo)
    items.append(user("u2", "And in Rome?"))
    second = to_messages(items, "Be brief.", memo)
    assert first == to_messages(items[:-1], "Be brief.")
    assert second == to_messages(items, "Be brief.")  # the same messages as without a memo
    assert second[0] is first[0] and second[1] is first[1]  # the instructions and u1, reused
    assert second[-2] is first[-1]  # m2
    assert second[2] is not first[2]  # a turn with calls is built afresh


def test_a_memo_forgets_what_the_last_build_did_not_use() -> None:
    memo = MessageMemo()
    hello = to_messages([user("u1", "Hello.")], None, memo)[0]
    to_messages([user("u2", "Bye.")], None, memo)
    assert to_messages([user("u1", "Hello.")], None, memo)[0] is not hello
    again = to_messages([user("u1", "Hello.")], None, memo)[0]
    assert to_messages([user("u1", "Hello.")], None, memo)[0] is again
