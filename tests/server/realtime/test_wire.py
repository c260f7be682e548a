"""Pure translation: client events in, session config merges, server events out. No sockets."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import orjson
import pydantic
import pytest
from openai.types.beta.realtime import ConversationItem as BetaItem
from openai.types.beta.realtime.session import Tool as BetaTool
from openai.types.realtime import ConversationItem as GAItem

from providers.types import NamedToolChoice
from server.accounts import Principal
from server.realtime.serialize import Serializer, WireEvent
from server.realtime.session_wire import apply_patch, session_json
from server.realtime.tokens import TokenSigner
from server.realtime.wire import (
    AudioAppend,
    FunctionCallCreate,
    FunctionCallOutputCreate,
    ItemCreate,
    SessionPatch,
    SessionUpdate,
    WireError,
    parse_client_event,
)
from tests.emulators.scripted import assert_no_extra
from tests.server.realtime.sdk import validated
from voice import events as ev
from voice.audio import ALAW_8K, PCM16_24K, ULAW_8K
from voice.config import FunctionTool, SessionConfig
from voice.history import Item


def patch(session: dict[str, object]) -> SessionPatch:
    event = parse_client_event(orjson.dumps({"type": "session.update", "session": session}))
    assert isinstance(event, SessionUpdate)
    return event.session


def test_append_decodes_base64_without_pydantic() -> None:
    event = parse_client_event('{"type": "input_audio_buffer.append", "audio": "AAEC", "event_id": "e1"}')
    assert event == AudioAppend(b"\x00\x01\x02", "e1")


@pytest.mark.parametrize(
    ("text", "code", "param"),
    [
        ("nope", "invalid_json", None),
        ("3", "invalid_event", None),
        ('{"type": 3}', "invalid_event", "type"),
        ('{"type": "session.nope"}', "unknown_event_type", "type"),
        ('{"type": "input_audio_buffer.append", "audio": "a b"}', "invalid_base64", "audio"),
        (
            '{"type": "conversation.item.truncate", "item_id": "i", "audio_end_ms": -1}',
            "invalid_value",
            "audio_end_ms",
        ),
        (
            '{"type": "conversation.item.create", "item": {"role": "robot", "content": [{"type": "input_text"}]}}',
            "invalid_value",
            "item.role",
        ),
    ],
)
def test_parse_errors_are_typed(text: str, code: str, param: str | None) -> None:
    with pytest.raises(WireError) as caught:
        parse_client_event(text)
    assert (caught.value.code, caught.value.param) == (code, param)


def test_parse_error_keeps_the_event_id_and_not_the_value() -> None:
    secret = "my card number is 4111"
    with pytest.raises(WireError) as caught:
        parse_client_event(
            orjson.dumps({"type": "conversation.item.create", "event_id": "e9", "item": {"role": secret}})
        )
    assert caught.value.event_id == "e9"
    assert secret not in caught.value.message


def test_item_create_reads_text_content() -> None:
    event = parse_client_event(
        '{"type": "conversation.item.create", "item": {"type": "message", "role": "user",'
        ' "content": [{"type": "input_text", "text": "hi"}]}, "unknown": 1}'
    )
    assert isinstance(event, ItemCreate) and event.item.content[0].text == "hi"


def test_ga_patch_merges_formats_and_turn_detection() -> None:
    config = SessionConfig()
    merged = apply_patch(
        config,
        patch(
            {
                "type": "realtime",
                "instructions": "Be brief.",
                "output_modalities": ["text"],
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcmu"},
                        "turn_detection": {"type": "server_vad", "silence_duration_ms": 300},
                    },
                    "output": {"format": {"type": "audio/pcma"}, "voice": "en-gb"},
                },
            }
        ),
    )
    assert merged.instructions == "Be brief." and merged.modalities == ("text",)
    assert (merged.input_format, merged.output_format, merged.voice) == (ULAW_8K, ALAW_8K, "en-gb")
    assert merged.turn_detection is not None and merged.turn_detection.silence_duration_ms == 300
    # Absent turn_detection leaves it alone; null switches to manual mode.
    assert apply_patch(merged, patch({"instructions": "x"})).turn_detection == merged.turn_detection
    manual = apply_patch(merged, patch({"audio": {"input": {"turn_detection": None}}}))
    assert manual.turn_detection is None


def test_beta_patch_uses_flat_fields() -> None:
    merged = apply_patch(
        SessionConfig(), patch({"input_audio_format": "g711_alaw", "turn_detection": None, "voice": "v"})
    )
    assert merged.input_format == ALAW_8K and merged.turn_detection is None and merged.voice == "v"
    semantic = apply_patch(
        SessionConfig(), patch({"turn_detection": {"type": "semantic_vad", "eagerness": "high"}})
    )
    assert semantic.turn_detection is not None and semantic.turn_detection.silence_duration_ms == 250


def test_pcm_at_another_rate_is_refused_with_its_param() -> None:
    with pytest.raises(WireError) as caught:
        apply_patch(
            SessionConfig(), patch({"audio": {"output": {"format": {"type": "audio/pcm", "rate": 16000}}}})
        )
    assert caught.value.param == "session.audio.output.format.rate"


def test_session_json_shapes() -> None:
    config = SessionConfig(input_format=PCM16_24K, output_format=ULAW_8K, voice="en-us")
    ga = session_json("sess_1", "default", config, beta=False)
    assert ga["audio"]["output"] == {"format": {"type": "audio/pcmu"}, "voice": "en-us"}
    beta = session_json("sess_1", "default", config, beta=True)
    assert beta["output_audio_format"] == "g711_ulaw" and beta["turn_detection"]["type"] == "server_vad"


def decode(frames: list[bytes]) -> list[dict[str, object]]:
    return [orjson.loads(f) for f in frames]


def test_audio_delta_names_ga_and_beta() -> None:
    delta = ev.AudioDelta("resp_1", "item_1", b"\x01\x02")
    ga = decode(Serializer(beta=False).frames(delta))[0]
    beta = decode(Serializer(beta=True).frames(delta))[0]
    assert ga["type"] == "response.output_audio.delta" and beta["type"] == "response.audio.delta"
    assert base64.b64decode(str(ga["delta"])) == b"\x01\x02"


def test_event_ids_are_unique_per_connection() -> None:
    serializer = Serializer(beta=False)
    ids = [decode(serializer.frames(ev.InputCleared()))[0]["event_id"] for _ in range(3)]
    assert len(set(ids)) == 3


def test_output_item_done_closes_every_part() -> None:
    item = Item("item_1", "assistant", "audio", "Hello.")
    names = [
        f["type"]
        for f in decode(Serializer(beta=False).frames(ev.OutputItemDone("resp_1", item, True, "Hello.")))
    ]
    assert names == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
    ]


def test_response_done_carries_usage_status_and_metadata() -> None:
    done = ev.ResponseDone("resp_1", "cancelled", "turn_detected", (), 10, 5, {"v2v_ms": 420.0})
    wire = decode(Serializer(beta=False).frames(done))[0]["response"]
    assert isinstance(wire, dict)
    assert wire["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    assert wire["usage"]["total_tokens"] == 15 and wire["metadata"] == {"v2v_ms": 420.0}


def test_wire_events_pass_through() -> None:
    frames = decode(Serializer(beta=False).frames(WireEvent({"type": "session.updated", "session": {}})))
    assert frames[0]["type"] == "session.updated"


def test_tokens_verify_and_expire() -> None:
    now = [1000.0]
    signer = TokenSigner(b"k" * 32, ttl=60, clock=lambda: now[0])
    principal = Principal("key_1", "org_1", None)
    token, expires = signer.mint(principal, model="agent:x")
    claims = signer.verify(token)
    assert (
        claims is not None and claims.principal == principal and claims.model == "agent:x" and expires == 1060
    )
    assert TokenSigner(b"j" * 32, clock=lambda: now[0]).verify(token) is None
    assert signer.verify(token.replace("ek_", "ek_x")) is None
    now[0] = 1061
    assert signer.verify(token) is None


WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def test_tools_and_tool_choice_merge_into_the_config_and_echo_back() -> None:
    merged = apply_patch(SessionConfig(), patch({"tools": [WEATHER_TOOL], "tool_choice": "required"}))
    assert merged.tools == (
        FunctionTool(
            "get_weather", "The weather in a city.", orjson.dumps(WEATHER_TOOL["parameters"]).decode()
        ),
    )
    assert merged.tool_choice == "required" and hash(merged)
    named = apply_patch(merged, patch({"tool_choice": {"type": "function", "name": "get_weather"}}))
    assert named.tool_choice == NamedToolChoice("get_weather") and named.tools == merged.tools
    beta_style = apply_patch(
        merged, patch({"tool_choice": {"type": "function", "function": {"name": "get_weather"}}})
    )
    assert beta_style.tool_choice == NamedToolChoice("get_weather")
    unchanged = apply_patch(named, patch({"instructions": "x"}))  # no tool fields: tools stay
    assert (unchanged.tools, unchanged.tool_choice) == (named.tools, named.tool_choice)
    cleared = apply_patch(merged, patch({"tools": [], "tool_choice": "auto"}))
    assert (cleared.tools, cleared.tool_choice) == ((), "auto")

    # The session's `id` and `object` are ours (the SDK's session.updated model lacks them).
    updated = {
        "type": "session.updated",
        "event_id": "e1",
        "session": session_json("s", "m", named, beta=False),
    }
    ga = validated(updated, known=frozenset({"$.session.id", "$.session.object"}))
    assert [t.model_dump(exclude_none=True) for t in ga.session.tools] == [WEATHER_TOOL]
    assert ga.session.tool_choice.name == "get_weather"
    beta = session_json("s", "m", merged, beta=True)
    assert [BetaTool.model_validate(t).model_dump(exclude_none=True) for t in beta["tools"]] == [WEATHER_TOOL]
    assert beta["tool_choice"] == "required"


@pytest.mark.parametrize(
    ("session", "param"),
    [
        ({"tools": [{**WEATHER_TOOL, "type": "mcp"}]}, "session.tools.0.type"),
        ({"tools": [{**WEATHER_TOOL, "name": "get weather"}]}, "session.tools.0.name"),
        ({"tools": [{**WEATHER_TOOL, "parameters": "{}"}]}, "session.tools.0.parameters"),
        ({"tools": [WEATHER_TOOL, WEATHER_TOOL]}, "session.tools.1.name"),
        ({"tools": WEATHER_TOOL}, "session.tools"),
        ({"tool_choice": "sometimes"}, "session.tool_choice"),
        ({"tool_choice": {"type": "mcp", "name": "x"}}, "session.tool_choice.type"),
        ({"tool_choice": {"type": "function"}}, "session.tool_choice.name"),
        (
            {"tools": [WEATHER_TOOL], "tool_choice": {"type": "function", "name": "book"}},
            "session.tool_choice",
        ),
    ],
)
def test_bad_tools_are_refused_with_their_param(session: dict[str, object], param: str) -> None:
    with pytest.raises(WireError) as caught:
        apply_patch(SessionConfig(), patch(session))
    assert (caught.value.code, caught.value.param) == ("invalid_value", param)


def test_function_items_parse_by_type() -> None:
    output = parse_client_event(
        '{"type": "conversation.item.create", "previous_item_id": "item_1",'
        ' "item": {"type": "function_call_output", "call_id": "call_1", "output": "{}", "extra": 1}}'
    )
    assert isinstance(output, FunctionCallOutputCreate)
    assert (output.item.call_id, output.item.output, output.previous_item_id) == ("call_1", "{}", "item_1")
    call = parse_client_event(
        '{"type": "conversation.item.create",'
        ' "item": {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"}}'
    )
    assert isinstance(call, FunctionCallCreate) and call.item.name == "get_weather"
    for item, param in [
        ({"type": "function_call_output", "output": "{}"}, "item.call_id"),
        ({"type": "function_call", "call_id": "c", "arguments": "{}"}, "item.name"),
        ({"type": "function_call_output", "call_id": "c", "output": 5}, "item.output"),
        ({"type": "mcp_call"}, "item.type"),
    ]:
        with pytest.raises(WireError) as caught:
            parse_client_event(
                orjson.dumps({"type": "conversation.item.create", "event_id": "e2", "item": item})
            )
        assert (caught.value.code, caught.value.param, caught.value.event_id) == (
            "invalid_value",
            param,
            "e2",
        )


@pytest.mark.parametrize("beta", [False, True])
def test_function_call_events_validate_as_the_sdks_own(beta: bool) -> None:
    serializer = Serializer(beta=beta)
    message = Item("item_1", "assistant", "audio", status="in_progress", response_id="resp_1")
    opened = Item(
        "item_2", "assistant", "function_call", status="in_progress", call_id="call_1", name="get_weather"
    )
    finished = replace(opened, text='{"city": "Paris"}', status="completed")
    result = Item("item_3", "tool", "function_call_output", "sunny", call_id="call_1")
    events: list[ev.SessionEvent] = [
        ev.OutputItemAdded("resp_1", message, 0),
        ev.OutputItemAdded("resp_1", opened, 1),
        ev.ItemCreated(opened, "item_1"),
        ev.FunctionCallArgumentsDelta("resp_1", "item_2", "call_1", '{"city": ', 1),
        ev.FunctionCallArgumentsDelta("resp_1", "item_2", "call_1", '"Paris"}', 1),
        ev.OutputItemDone("resp_1", finished, False, finished.text, 1),
        ev.ItemCreated(result, "item_2"),
    ]
    wires = [w for e in events for w in decode(serializer.frames(e))]
    names = [w["type"] for w in wires if w["type"] != "response.content_part.added"]
    added = ["conversation.item.created"] + ([] if beta else ["conversation.item.added"])
    assert names == [
        "response.output_item.added",
        "response.output_item.added",
        *added,
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        *([] if beta else ["conversation.item.done"]),
        *added,
        *([] if beta else ["conversation.item.done"]),
    ]
    checked = [validated(w, beta=beta) for w in wires]
    parsed = [p for p in checked if p.type != "response.content_part.added"]
    assert [p.output_index for p in parsed if hasattr(p, "output_index")] == [0, 1, 1, 1, 1, 1]
    done = next(p for p in parsed if p.type == "response.function_call_arguments.done")
    assert (done.call_id, done.item_id, done.arguments) == ("call_1", "item_2", '{"city": "Paris"}')
    assert beta or done.name == "get_weather"
    item = next(p for p in parsed if p.type == "response.output_item.done").item
    assert (item.type, item.call_id, item.name, item.arguments, item.status) == (
        "function_call",
        "call_1",
        "get_weather",
        '{"city": "Paris"}',
        "completed",
    )
    created = [p.item for p in parsed if p.type == "conversation.item.created"][-1]
    assert (created.type, created.call_id, created.output) == ("function_call_output", "call_1", "sunny")

    # The message's deltas carry its own place in the response, not a fixed 0.
    serializer.frames(ev.OutputItemAdded("resp_2", replace(message, id="item_9"), 1))
    assert decode(serializer.frames(ev.AudioDelta("resp_2", "item_9", b"\x00\x00")))[0]["output_index"] == 1
    response = orjson.loads(
        serializer.frames(ev.ResponseDone("resp_1", "completed", None, (message, finished)))[0]
    )
    items: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(BetaItem if beta else GAItem)
    output = [items.validate_python(i) for i in response["response"]["output"]]
    assert [i.type for i in output] == ["message", "function_call"]
    assert_no_extra(output)
