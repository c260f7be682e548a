"""Pure translation: client events in, session config merges, server events out. No sockets."""

from __future__ import annotations

import base64

import orjson
import pytest

from server.accounts import Principal
from server.realtime.serialize import Serializer, WireEvent
from server.realtime.session_wire import apply_patch, session_json
from server.realtime.tokens import TokenSigner
from server.realtime.wire import (
    AudioAppend,
    ItemCreate,
    SessionPatch,
    SessionUpdate,
    WireError,
    parse_client_event,
)
from voice import events as ev
from voice.audio import ALAW_8K, PCM16_24K, ULAW_8K
from voice.config import SessionConfig
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
