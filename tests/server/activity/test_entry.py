"""A request entry becomes its row values: outcome, route, tokens, and content only when kept."""

from __future__ import annotations

import json

from providers.contract import BillingSource, ErrorClass
from providers.types import (
    ChatRequest,
    ImagePart,
    Message,
    Role,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDone,
    Usage,
)
from routing.trace import AttemptTrace, Outcome, TraceEntry
from server.activity.entry import CLIENT_GONE, CONTENT_LIMIT, Completion, RequestEntry, cut, messages_json

REQUEST = ChatRequest(
    model="default",
    messages=(
        Message(Role.USER, (TextPart("look: "), ImagePart(url="data:image/png;base64,AAAA"))),
        Message(Role.ASSISTANT, tool_calls=(ToolCall("c1", "lookup", '{"q": 1}'),)),
        Message(Role.TOOL, (TextPart("42"),), tool_call_id="c1"),
    ),
)


def values(entry: RequestEntry) -> dict[str, object]:
    return entry.row_values()[1]


def served_trace() -> AttemptTrace:
    trace = AttemptTrace(intent="chat", source="org:chat")
    trace.add(
        TraceEntry(
            "openai/gpt-4o",
            "openai:main",
            Outcome.FAILED,
            "server_error",
            error_class=ErrorClass.SERVER_ERROR,
        )
    )
    trace.add(
        TraceEntry("mistral/small", "mistral:default", Outcome.SERVED, billing_source=BillingSource.BYOK)
    )
    return trace


def test_a_served_entry_names_the_serving_connection_and_keeps_no_content_by_default() -> None:
    entry = RequestEntry("chat.completions", request_id="req_1")
    entry.org_id, entry.key_id, entry.model, entry.status, entry.completed = (
        "org_1",
        "key_1",
        "default",
        200,
        True,
    )
    entry.trace, entry.usage, entry.prompt = served_trace(), Usage(input_tokens=7, output_tokens=3), REQUEST
    entry.finish()
    row = values(entry)
    assert (row["connection"], row["served_model"], row["billing_source"]) == (
        "mistral:default",
        "mistral/small",
        "byok",
    )
    assert (row["status"], row["outcome"], row["error_class"], row["intent"]) == (200, "ok", None, "chat")
    assert (row["input_tokens"], row["output_tokens"]) == (7, 3)
    assert row["route"] == served_trace().to_dict()
    assert row["content_request"] is None and row["content_response"] is None


def test_outcomes() -> None:
    failed = RequestEntry("chat.completions")
    failed.status, failed.error_code, failed.trace = 502, "upstream_failed", AttemptTrace(intent="chat")
    failed.trace.add(
        TraceEntry("openai/x", "openai:main", Outcome.FAILED, "timeout", error_class=ErrorClass.TIMEOUT)
    )
    failed.finish()
    assert (values(failed)["outcome"], values(failed)["error_class"]) == ("error", "timeout")

    after_output = RequestEntry("chat.completions")
    after_output.status, after_output.failed, after_output.completed = 200, True, True
    assert after_output.outcome == "error"

    gone = RequestEntry("chat.completions")
    gone.finish()  # nothing was ever sent
    assert (gone.status, gone.outcome) == (CLIENT_GONE, "cancelled")

    cut_short = RequestEntry("chat.completions")
    cut_short.status = 200  # the head went out, the body never ended
    assert cut_short.outcome == "cancelled"


def test_content_is_the_messages_and_the_completion_when_kept() -> None:
    entry = RequestEntry("chat.completions")
    entry.org_id, entry.status, entry.completed = "org_1", 200, True
    completion = Completion()
    for event in (TextDelta("Hel"), TextDelta("lo"), ToolCallDone(0, ToolCall("c2", "f", "{}"))):
        completion.add(event)
    entry.prompt, entry.completion, entry.content = REQUEST, completion, True
    entry.finish()
    row = values(entry)
    assert json.loads(str(row["content_request"])) == [
        {"role": "user", "content": "look: [image]"},
        {"role": "assistant", "content": "", "tool_calls": [{"name": "lookup", "arguments": '{"q": 1}'}]},
        {"role": "tool", "content": "42", "tool_call_id": "c1"},
    ]
    assert row["content_response"] == 'Hello{"tool_call":{"name":"f","arguments":"{}"}}'


def test_content_is_cut_at_32_kib_on_a_character_boundary() -> None:
    assert cut("short") == "short"
    long = "é" * CONTENT_LIMIT  # two bytes each
    kept = cut(long)
    assert len(kept.encode()) == CONTENT_LIMIT and set(kept) == {"é"}
    odd = "a" + "é" * CONTENT_LIMIT
    assert len(cut(odd).encode()) == CONTENT_LIMIT - 1  # never half a character
    completion = Completion()
    for _ in range(100):
        completion.add(TextDelta("x" * 1000))
    assert CONTENT_LIMIT < len(completion.text()) <= CONTENT_LIMIT + 1000  # gathering stops past the limit
    assert messages_json(ChatRequest(model="m", messages=())) == "[]"
