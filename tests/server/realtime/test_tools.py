"""Function calling over `/v1/realtime`, with the OpenAI emulator as the routed LLM.

A question, the model's call as a `function_call` item with streamed arguments, the client's
result, and the spoken answer; the LLM requests carry the tools, then the call and its
result. Also: an unknown `call_id`, barge-in while the arguments stream, and the official
openai SDK's realtime client driving the same loop. STT and TTS are in-memory fakes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest
from sqlalchemy import select

from billing.tables import UsageRecord
from providers.vault.secret import Secret
from tests.emulators.harness import ServedApp
from tests.emulators.openai import OpenAIEmulator, Scenario, ToolCallSpec
from tests.server.realtime.conftest import Client, Patchbay
from tests.server.realtime.sdk import validated
from tests.server.realtime.test_endpoint import speech_24k, stream_audio, types
from tests.voice.speech import speak
from voice.audio import resample

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
ARGS = '{"city": "Paris", "unit": "celsius"}'
RESULT = '{"forecast": "sunny", "temperature_c": 21}'
ANSWER = "It is sunny and twenty-one degrees in Paris."


def checked(events: list[dict[str, Any]]) -> None:
    """Every item and function-call event validates as the SDK's own model, no field unknown."""
    prefixes = ("conversation.item.", "response.output_item.", "response.function_call")
    relevant = [e for e in events if e["type"].startswith(prefixes)]
    assert relevant
    for event in relevant:
        validated(event)


async def test_a_spoken_question_a_function_call_its_result_and_the_spoken_answer(
    connect: Any, llm: OpenAIEmulator, patchbay: Patchbay
) -> None:
    llm.enqueue(
        Scenario(text="Let me check.", tool_calls=(ToolCallSpec("get_weather", ARGS),)),
        Scenario(text=ANSWER),
    )
    client: Client = await connect()
    await client.until("session.created")
    await client.send("session.update", session={"type": "realtime", "tools": [WEATHER]})
    session = (await client.until("session.updated"))[-1]["session"]
    assert (session["tools"], session["tool_choice"]) == ([WEATHER], "auto")

    await stream_audio(client, speech_24k("What is the weather in Paris?"))
    first = await client.until("response.done")
    checked(first)
    names = types(first)
    call = next(
        e["item"]
        for e in first
        if e["type"] == "response.output_item.added" and e["item"]["type"] == "function_call"
    )
    call_id = call["call_id"]
    deltas = [e for e in first if e["type"] == "response.function_call_arguments.delta"]
    assert "".join(d["delta"] for d in deltas) == ARGS and len(deltas) > 1
    assert {(d["item_id"], d["call_id"], d["output_index"]) for d in deltas} == {(call["id"], call_id, 1)}
    done = next(e for e in first if e["type"] == "response.function_call_arguments.done")
    assert (done["name"], done["arguments"], done["call_id"]) == ("get_weather", ARGS, call_id)
    order = [
        "response.created",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.done",
    ]
    assert [names.index(n) for n in order] == sorted(names.index(n) for n in order)
    spoken = "".join(e["delta"] for e in first if e["type"] == "response.output_audio_transcript.delta")
    assert spoken == "Let me check." and "response.output_audio.delta" in names
    output = first[-1]["response"]["output"]
    assert [(i["type"], i["status"]) for i in output] == [
        ("message", "completed"),
        ("function_call", "completed"),
    ]
    assert (output[1]["call_id"], output[1]["name"], output[1]["arguments"]) == (call_id, "get_weather", ARGS)
    request = llm.chat_requests[0].json
    assert request["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER["parameters"],
                "description": WEATHER["description"],
            },
        }
    ]
    assert "tool_choice" not in request  # `auto` is the default

    await client.send(
        "conversation.item.create",
        item={"type": "function_call_output", "call_id": call_id, "output": RESULT},
    )
    created = (await client.until("conversation.item.created"))[-1]["item"]
    assert (created["type"], created["call_id"], created["output"]) == (
        "function_call_output",
        call_id,
        RESULT,
    )
    await client.send("response.create")
    second = await client.until("response.done")
    checked(second)
    answer = "".join(e["delta"] for e in second if e["type"] == "response.output_audio_transcript.delta")
    assert answer == ANSWER and second[-1]["response"]["status"] == "completed"

    messages = llm.chat_requests[1].json["messages"]
    assert messages[-3] == {"role": "user", "content": "can you book a table for two"}  # the fake STT
    assert messages[-2] == {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": ARGS}}
        ],
    }
    assert messages[-1] == {"role": "tool", "tool_call_id": call_id, "content": RESULT}

    await patchbay.services.usage.flush()
    async with patchbay.services.db.session() as s:
        rows = list(await s.scalars(select(UsageRecord).where(UsageRecord.org_id == patchbay.org_id)))
    llm_rows = [r for r in rows if r.segment == "llm"]
    assert len(llm_rows) == 2 and all(r.output_tokens > 0 for r in llm_rows)
    assert sorted(r.segment for r in rows) == ["llm", "llm", "stt", "tts", "tts"]


async def test_an_output_for_an_unknown_call_is_refused_and_the_session_goes_on(connect: Any) -> None:
    client: Client = await connect()
    await client.until("session.created")
    await client.send(
        "conversation.item.create",
        event_id="evt_7",
        item={"type": "function_call_output", "call_id": "call_nope", "output": "{}"},
    )
    error = (await client.until("error"))[-1]["error"]
    assert (error["code"], error["param"], error["event_id"]) == (
        "invalid_tool_call_id",
        "item.call_id",
        "evt_7",
    )
    await client.send(
        "conversation.item.create",
        item={"type": "function_call", "call_id": "call_old", "name": "get_weather", "arguments": ARGS},
    )
    restored = (await client.until("conversation.item.created"))[-1]["item"]
    assert (restored["type"], restored["call_id"], restored["status"]) == (
        "function_call",
        "call_old",
        "completed",
    )
    await client.send(
        "conversation.item.create",
        item={"type": "function_call_output", "call_id": "call_old", "output": "{}"},
    )
    checked(await client.until("conversation.item.created"))


async def test_response_create_changes_instructions_tools_and_limits_for_that_response_only(
    connect: Any, llm: OpenAIEmulator
) -> None:
    llm.enqueue(
        Scenario(text="", tool_calls=(ToolCallSpec("get_weather", ARGS),)),
        Scenario(text=ANSWER),
    )
    client: Client = await connect()
    await client.until("session.created")
    await client.send("session.update", session={"type": "realtime", "instructions": "Be brief."})
    await client.until("session.updated")
    await client.send(
        "conversation.item.create",
        item={
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Weather in Paris?"}],
        },
    )
    await client.send(
        "response.create",
        response={
            "instructions": "Use the weather tool.",
            "output_modalities": ["text"],
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "max_output_tokens": 64,
        },
    )
    first = await client.until("response.done")
    assert not any(e["type"].startswith("response.output_audio") for e in first)
    assert [i["type"] for i in first[-1]["response"]["output"]] == ["function_call"]
    sent = llm.chat_requests[0].json
    assert sent["messages"][0] == {"role": "system", "content": "Use the weather tool."}
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather"]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent.get("max_completion_tokens", sent.get("max_tokens")) == 64

    call_id = first[-1]["response"]["output"][0]["call_id"]
    await client.send(
        "conversation.item.create",
        item={"type": "function_call_output", "call_id": call_id, "output": RESULT},
    )
    await client.send("response.create")
    second = await client.until("response.done")
    assert any(e["type"] == "response.output_audio.delta" for e in second), "the session speaks again"
    again = llm.chat_requests[1].json
    assert again["messages"][0] == {"role": "system", "content": "Be brief."}
    assert "tools" not in again and "tool_choice" not in again

    await client.send(
        "response.create", event_id="evt_9", response={"tool_choice": {"type": "function", "name": "nope"}}
    )
    error = (await client.until("error"))[-1]["error"]
    assert (error["param"], error["event_id"]) == ("response.tool_choice", "evt_9")
    await client.send("response.create", response={"max_output_tokens": 0})
    error = (await client.until("error"))[-1]["error"]
    assert error["param"] == "response.max_output_tokens"


KIMI_KEY = "sk-kimi-CANARY-realtime-0123456789abcdef"


@pytest.fixture(scope="module")
def kimi_served() -> Iterator[tuple[OpenAIEmulator, str]]:
    emulator = OpenAIEmulator("kimi", api_key=KIMI_KEY, models=("kimi-k2-thinking",))
    with ServedApp(emulator) as served:
        yield emulator, served.url + "/v1"


async def test_a_thinking_model_gets_its_reasoning_back_with_the_call(
    connect: Any, patchbay: Patchbay, kimi_served: tuple[OpenAIEmulator, str]
) -> None:
    """Kimi's thinking models refuse a tool call turn without its `reasoning_content`."""
    kimi, url = kimi_served
    kimi.reset()
    services = patchbay.services
    async with services.db.session() as s:
        await services.connections().create(
            s, patchbay.org_id, provider="moonshot", name="main", base_url=url, key=Secret(KIMI_KEY)
        )
        await services.agents().set_org_routing(
            s, patchbay.org_id, chains={"chat": ["moonshot/kimi-k2-thinking"]}
        )
    assert services.gateway is not None
    services.gateway.registry.invalidate(patchbay.org_id)
    kimi.enqueue(
        Scenario(
            reasoning_content="The user wants Paris weather.", tool_calls=(ToolCallSpec("get_weather", ARGS),)
        ),
        Scenario(text=ANSWER),
    )
    client: Client = await connect()
    await client.until("session.created")
    await client.send("session.update", session={"type": "realtime", "tools": [WEATHER]})
    await client.until("session.updated")
    await client.send(
        "conversation.item.create",
        item={
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Weather in Paris?"}],
        },
    )
    await client.send("response.create")
    first = (await client.until("response.done"))[-1]["response"]
    call = next(item for item in first["output"] if item["type"] == "function_call")
    await client.send(
        "conversation.item.create",
        item={"type": "function_call_output", "call_id": call["call_id"], "output": RESULT},
    )
    await client.send("response.create")
    second = (await client.until("response.done"))[-1]["response"]
    assert second["status"] == "completed", second
    history = kimi.chat_requests[1].json["messages"]
    assert history[1]["tool_calls"][0]["id"] == call["call_id"]
    assert history[1]["reasoning_content"] == "The user wants Paris weather."


async def test_barge_in_while_the_arguments_stream_cancels_the_call(
    connect: Any, llm: OpenAIEmulator
) -> None:
    # The role frame, the call's first frame and two pieces of its arguments; then the LLM stalls.
    llm.enqueue(Scenario(text="", tool_calls=(ToolCallSpec("get_weather", ARGS),), stall_after=4))
    client: Client = await connect()
    await client.until("session.created")
    await client.send("session.update", session={"type": "realtime", "tools": [WEATHER]})
    await stream_audio(client, speech_24k("What is the weather in Paris?"))
    before = await client.until("response.function_call_arguments.delta")
    response_id = before[-1]["response_id"]

    await stream_audio(client, resample(speak("No wait, stop."), 16_000, 24_000))
    await client.until("input_audio_buffer.speech_started")
    tail = await client.until("response.done")
    response = tail[-1]["response"]
    assert (response["id"], response["status"]) == (response_id, "cancelled")
    assert response["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    late = [
        e
        for e in tail
        if e.get("response_id") == response_id and e["type"].startswith("response.function_call")
    ]
    assert late == []
    (call,) = response["output"]
    assert (call["type"], call["status"]) == ("function_call", "incomplete")
    assert ARGS.startswith(call["arguments"]) and call["arguments"] != ARGS
    assert await asyncio.to_thread(llm.wait_disconnect, 5.0) is not None


async def until_done(connection: Any) -> list[Any]:
    seen: list[Any] = []
    async with asyncio.timeout(20):
        async for event in connection:
            seen.append(event)
            if event.type == "response.done":
                return seen
    raise AssertionError("the connection ended before response.done")


async def test_the_official_sdk_runs_the_tool_loop(sdk: openai.AsyncOpenAI, llm: OpenAIEmulator) -> None:
    llm.enqueue(Scenario(text="", tool_calls=(ToolCallSpec("get_weather", ARGS),)), Scenario(text=ANSWER))
    async with sdk.realtime.connect(model="gpt-realtime") as connection:
        await connection.session.update(
            session={
                "type": "realtime",
                "tools": [WEATHER],  # type: ignore[list-item]
                "tool_choice": "required",
                "audio": {"input": {"turn_detection": None}},
            }
        )
        await connection.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Paris weather?"}],
            }
        )
        await connection.response.create()
        first = await until_done(connection)
        done = next(e for e in first if e.type == "response.function_call_arguments.done")
        assert (done.name, done.arguments) == ("get_weather", ARGS)
        (call,) = first[-1].response.output  # calls alone: no empty assistant message
        assert (call.type, call.call_id, call.arguments) == ("function_call", done.call_id, ARGS)
        assert not any(e.type == "response.output_audio.delta" for e in first)

        await connection.conversation.item.create(
            item={"type": "function_call_output", "call_id": call.call_id, "output": RESULT}
        )
        await connection.response.create()
        second = await until_done(connection)
    transcript = next(e for e in second if e.type == "response.output_audio_transcript.done").transcript
    assert transcript == ANSWER and second[-1].response.status == "completed"
    first_request, second_request = (r.json for r in llm.chat_requests)
    assert first_request["tool_choice"] == "required"
    assert [m["role"] for m in second_request["messages"]] == ["user", "assistant", "tool"]
    assert second_request["messages"][1]["tool_calls"][0]["id"] == call.call_id
    assert orjson.loads(second_request["messages"][2]["content"]) == orjson.loads(RESULT)
