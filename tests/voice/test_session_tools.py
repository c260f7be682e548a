"""Function calling in the voice session with fake engines: the request's tools, the model's
calls as items, the client's results, and barge-in while the model writes arguments."""

from __future__ import annotations

from typing import Any

import pytest

from billing.usage import Segment
from providers.types import (
    NamedToolChoice,
    ReasoningArtifactDone,
    ReasoningContent,
    Role,
    ToolCall,
    ToolSpec,
)
from tests.voice.fake_llm import FakeLLM, tool_call
from tests.voice.fakes import FakeTTS
from tests.voice.speech import speak
from tests.voice.test_session import Usage, drain, feed, kinds, make_session, spoken_turn
from voice import events as ev
from voice.audio import PCM16_16K
from voice.config import FunctionTool, SessionConfig
from voice.errors import ClientError

WEATHER = FunctionTool(
    "get_weather",
    "The weather in a city.",
    '{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}',
)
ARGS = '{"city": "Paris"}'


def manual(**kw: Any) -> SessionConfig:
    return SessionConfig(input_format=PCM16_16K, turn_detection=None, tools=(WEATHER,), **kw)


async def test_the_request_carries_the_tools_and_the_choice() -> None:
    llm = FakeLLM(("Hi.",))
    session = make_session(llm=llm, config=manual())
    session.add_text("user", "hi")
    for choice in ("auto", "required", NamedToolChoice("get_weather"), "none"):
        session.update(manual(tool_choice=choice))
        session.create_response()
        await session.idle()
    session.update(SessionConfig(input_format=PCM16_16K, turn_detection=None, tool_choice="required"))
    session.create_response()
    await session.idle()
    sent = llm.state.requests
    spec = ToolSpec("get_weather", "The weather in a city.", WEATHER.spec().parameters)
    assert sent[0].tools == (spec,) and spec.parameters["required"] == ["city"]
    assert [r.tool_choice for r in sent] == [None, "required", NamedToolChoice("get_weather"), "none", None]
    assert sent[4].tools == ()  # no tools, no choice: providers refuse a choice without tools


async def test_a_call_becomes_a_function_call_item_and_the_words_before_it_are_spoken() -> None:
    usage = Usage()
    tts = FakeTTS(sample_rate=24_000)
    llm = FakeLLM(("Let me check. ", *tool_call("call_1", "get_weather", ARGS)))
    session = make_session(
        llm=llm, tts=tts, usage=usage, config=SessionConfig(input_format=PCM16_16K, tools=(WEATHER,))
    )
    await feed(session, spoken_turn("What is the weather in Paris?"))
    await session.idle()
    events = drain(session)
    names = kinds(events)

    added = [e for e in events if isinstance(e, ev.OutputItemAdded)]
    message, call = added[0].item, added[1].item
    assert [(a.item.kind, a.output_index) for a in added] == [("audio", 0), ("function_call", 1)]
    assert (call.call_id, call.name, call.status) == ("call_1", "get_weather", "in_progress")
    deltas = [e for e in events if isinstance(e, ev.FunctionCallArgumentsDelta)]
    assert "".join(d.delta for d in deltas) == ARGS and len(deltas) > 1
    assert {(d.item_id, d.call_id, d.output_index) for d in deltas} == {(call.id, "call_1", 1)}
    call_done = next(e for e in events if isinstance(e, ev.OutputItemDone) and e.item.id == call.id)
    assert (
        call_done.item.text == ARGS and call_done.item.status == "completed" and call_done.output_index == 1
    )
    assert names.index("FunctionCallArgumentsDelta") < events.index(call_done)

    assert [c.text for c in tts.state.calls] == ["Let me check."]
    assert "".join(e.text for e in events if isinstance(e, ev.TranscriptDelta)) == "Let me check."
    done = events[-1]
    assert isinstance(done, ev.ResponseDone) and done.status == "completed"
    assert [(i.id, i.kind, i.status) for i in done.output] == [
        (message.id, "audio", "completed"),
        (call.id, "function_call", "completed"),
    ]
    assert done.output[0].text == "Let me check." and done.output[1].text == ARGS
    assert session.conversation.get(call.id) == done.output[1]
    assert {s.segment for s in usage.segments} == {Segment.STT, Segment.LLM, Segment.TTS}


async def test_a_reply_of_calls_alone_has_no_message_and_says_nothing() -> None:
    usage = Usage()
    tts = FakeTTS(sample_rate=24_000)
    llm = FakeLLM(tool_call("call_1", "get_weather", ARGS))
    session = make_session(llm=llm, tts=tts, usage=usage, config=manual())
    session.add_text("user", "Weather in Paris?")
    session.create_response()
    await session.idle()
    events = drain(session)
    assert not [e for e in events if isinstance(e, ev.AudioDelta | ev.TranscriptDelta)]
    assert tts.state.calls == []
    done = events[-1]
    assert isinstance(done, ev.ResponseDone) and done.status == "completed"
    assert [i.kind for i in done.output] == ["function_call"]
    assert [i.kind for i in session.conversation.items] == ["text", "function_call"]
    assert [m.role for m in session.conversation.messages(None)] == [Role.USER]  # unanswered so far
    assert {s.segment for s in usage.segments} == {Segment.LLM}
    assert done.metadata["ttfb_ms"]["llm"] is not None  # the call was the first output


async def test_the_result_and_the_call_go_with_the_next_request_and_the_answer_is_spoken() -> None:
    llm = FakeLLM(("Let me check. ", *tool_call("call_1", "get_weather", ARGS)))
    session = make_session(llm=llm, config=manual(instructions="You report weather."))
    session.add_text("user", "Weather in Paris?")
    session.create_response()
    await session.idle()
    drain(session)

    with pytest.raises(ClientError) as unknown:
        session.add_function_output("call_nope", "{}")
    assert (unknown.value.code, unknown.value.param) == ("invalid_tool_call_id", "item.call_id")
    output = session.add_function_output("call_1", '{"temperature_c": 21}')
    assert isinstance(drain(session)[-1], ev.ItemCreated)
    llm.deltas = ("It is twenty-one degrees in Paris.",)
    session.create_response()
    await session.idle()

    second = llm.state.requests[1].messages
    assert [m.role for m in second] == [Role.SYSTEM, Role.USER, Role.ASSISTANT, Role.TOOL]
    assert second[2].text == "Let me check."
    assert second[2].tool_calls == (ToolCall("call_1", "get_weather", ARGS),)
    assert (second[3].tool_call_id, second[3].text) == ("call_1", '{"temperature_c": 21}')
    spoken = "".join(e.text for e in drain(session) if isinstance(e, ev.TranscriptDelta))
    assert spoken == "It is twenty-one degrees in Paris."
    assert output.role == "tool" and output.kind == "function_call_output"


async def test_the_reasoning_that_came_with_a_call_goes_back_with_it() -> None:
    """Kimi's thinking models refuse a tool call turn sent back without its reasoning_content."""
    thought = ReasoningContent("openai-chat:moonshot", "The user wants Paris weather.")
    llm = FakeLLM((ReasoningArtifactDone(thought), *tool_call("call_1", "get_weather", ARGS)))
    session = make_session(llm=llm, config=manual())
    session.add_text("user", "Weather in Paris?")
    session.create_response()
    await session.idle()
    session.add_function_output("call_1", '{"temperature_c": 21}')
    llm.deltas = ("Twenty-one degrees.",)
    session.create_response()
    await session.idle()
    assistant = llm.state.requests[1].messages[1]
    assert assistant.tool_calls == (ToolCall("call_1", "get_weather", ARGS),)
    assert assistant.reasoning.artifacts == (thought,)


async def test_barge_in_while_the_model_writes_arguments_drops_the_deltas() -> None:
    script = tool_call("call_1", "get_weather", '{"city": "Paris", "unit": "celsius"}')
    llm = FakeLLM(script, hold_after=3)  # the start and two pieces of the arguments, then it waits
    session = make_session(llm=llm, config=SessionConfig(input_format=PCM16_16K, tools=(WEATHER,)))
    await feed(session, spoken_turn("What is the weather in Paris?"))
    await llm.state.holding.wait()  # two argument deltas are queued, not yet sent
    assert session.outbox.dropped == 0

    await feed(session, speak("Wait, stop."))  # the caller talks over the response
    assert not session.responding
    await session.idle()
    events = drain(session)
    assert not [e for e in events if isinstance(e, ev.FunctionCallArgumentsDelta)]
    assert session.outbox.dropped == 2  # purged from the queue by the barge-in
    done = next(e for e in events if isinstance(e, ev.ResponseDone))
    assert (done.status, done.reason) == ("cancelled", "turn_detected")
    (call,) = done.output
    assert (call.kind, call.status, call.text) == ("function_call", "incomplete", '{"city": "Pari')
    assert not any(isinstance(e, ev.OutputItemDone) for e in events)
    assert llm.state.cancelled == 1
    with pytest.raises(ClientError):
        session.add_function_call("get_weather", "{}", call_id="call_1")  # the id is taken
    session.add_function_output("call_1", "late")
    assert all(not m.tool_calls for m in session.conversation.messages(None))  # cut off: not replayed


async def test_a_client_restores_calls_and_results_into_the_history() -> None:
    llm = FakeLLM(("You are welcome.",))
    session = make_session(llm=llm, config=manual(modalities=("text",)))
    session.add_text("user", "Weather in Paris?")
    restored = session.add_function_call("get_weather", ARGS, call_id="call_9")
    session.add_function_output("call_9", "sunny")
    session.add_text("user", "Thanks!")
    session.create_response()
    await session.idle()
    sent = llm.state.requests[0].messages
    assert [(m.role, m.text) for m in sent] == [
        (Role.USER, "Weather in Paris?"),
        (Role.ASSISTANT, ""),
        (Role.TOOL, "sunny"),
        (Role.USER, "Thanks!"),
    ]
    assert sent[1].tool_calls == (ToolCall("call_9", "get_weather", ARGS),)
    assert (restored.role, restored.kind, restored.status) == ("assistant", "function_call", "completed")
    generated = session.add_function_call("get_weather", "{}")
    assert generated.call_id and generated.call_id != "call_9"
