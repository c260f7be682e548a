"""Replies spoken over ElevenLabs' `stream-input` WebSocket through a real Patchbay (emulated
ElevenLabs): one connection per reply, one usage segment, and a refused key falling back."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from billing.usage import UsageRecord
from routing.speech import BuiltIn
from server.realtime.runtime import EnginesFactory
from tests.emulators import elevenlabs as el
from tests.emulators.harness import ServedApp
from tests.emulators.openai import OpenAIEmulator, Scenario
from tests.server.realtime.conftest import Patchbay
from tests.server.realtime.test_acceptance import quiet_session, spoken_reply, with_elevenlabs
from tests.voice.fakes import FakeSTT, FakeTTS


@pytest.fixture
def engines() -> EnginesFactory | None:
    return None  # routed speech, as in production


@pytest.fixture
def eleven() -> Any:
    emulator = el.ElevenLabsEmulator(tone_seconds=0.3)
    with ServedApp(emulator.app) as served:
        yield emulator, served.url


async def tts_rows(patchbay: Patchbay) -> list[UsageRecord]:
    await patchbay.services.usage.flush()
    async with patchbay.services.db.session() as s:
        rows = (await s.execute(select(UsageRecord).where(UsageRecord.segment == "tts"))).scalars().all()
    return sorted(rows, key=lambda r: r.created_at)


async def test_a_reply_is_one_stream_and_one_segment(
    patchbay: Patchbay, connect: Any, llm: OpenAIEmulator, eleven: Any
) -> None:
    emulator, url = eleven
    await with_elevenlabs(patchbay, url, tts=["elevenlabs/eleven_flash_v2_5"])
    patchbay.runtime.internal = BuiltIn(stt=FakeSTT(), tts=FakeTTS("internal:fake"))
    llm.enqueue(Scenario(text="Sure thing. Your table is booked for two."))

    client = await quiet_session(connect)
    done = await spoken_reply(client, "book it")
    assert done["metadata"]["tts_provider"] == "elevenlabs:default"
    assert done["metadata"]["tts_route"] == "elevenlabs:default/eleven_flash_v2_5=served"
    ws = emulator.stream_input
    assert ws.opened == 1 and ws.finished == 1
    sent = "".join(m["text"] for m in ws.received[1:])
    assert sent == "Sure thing. Your table is booked for two. " and ws.received[-1] == {"text": ""}
    assert ws.queries[0]["output_format"] == "pcm_24000"
    assert [r.path for r in emulator.recorder.requests] == [
        "/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM/stream-input"
    ]
    rows = await tts_rows(patchbay)
    # Settled by the characters actually sent (the text, less the protocol's closing space).
    assert [(r.profile_id, r.billing_source, r.characters) for r in rows] == [
        ("elevenlabs:default", "byok", len(sent.rstrip()))
    ]


async def test_a_long_first_sentence_starts_speaking_before_it_ends(
    patchbay: Patchbay, connect: Any, llm: OpenAIEmulator, eleven: Any
) -> None:
    emulator, url = eleven
    await with_elevenlabs(patchbay, url, tts=["elevenlabs/eleven_flash_v2_5"])
    patchbay.runtime.internal = BuiltIn(stt=FakeSTT(), tts=FakeTTS("internal:fake"))
    first = (
        "Your appointment with Doctor Patel is confirmed for Thursday the fourteenth "
        "at half past ten in the morning at our Main Street clinic."
    )
    # The LLM stops (and holds) just before "clinic.": the sentence never ends.
    llm.enqueue(Scenario(text=f"{first} Please arrive early.", stall_after=30))

    client = await quiet_session(connect)
    await client.send(
        "conversation.item.create",
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "when?"}]},
    )
    await client.send("response.create")
    await client.until("response.output_audio.delta", within=20)
    ws = emulator.stream_input
    # Audio came without a sentence end: the provider's buffer reached its first step (120
    # characters) and it generated then, as the words came; nothing was flushed.
    assert [why for _, why in ws.generations] == ["schedule"]
    assert len(ws.generations[0][0]) >= 120 and first.startswith(ws.generations[0][0])
    assert not any(m.get("flush") for m in ws.received)
    await client.send("response.cancel")
    done = (await client.until("response.done", within=20))[-1]["response"]
    assert done["status"] == "cancelled"
    # Cut short, the segment settles what was sent: the words up to the stall, no more.
    sent = "".join(m["text"] for m in ws.received[1:])
    assert first.startswith(sent.strip())
    assert [r.characters for r in await tts_rows(patchbay)] == [len(sent.rstrip())]


async def test_a_refused_key_on_the_socket_falls_back_and_is_then_skipped(
    patchbay: Patchbay, connect: Any, llm: OpenAIEmulator, eleven: Any
) -> None:
    emulator, url = eleven
    await with_elevenlabs(patchbay, url, tts=["elevenlabs/eleven_flash_v2_5"])
    patchbay.runtime.internal = BuiltIn(stt=FakeSTT(), tts=FakeTTS("internal:fake"))
    emulator.recorder.script(el.invalid_api_key())
    llm.enqueue(Scenario(text="First answer."), Scenario(text="Second answer."))

    client = await quiet_session(connect)
    done = await spoken_reply(client, "first")
    assert done["metadata"]["tts_provider"] == "internal:fake"
    assert emulator.stream_input.opened == 1
    done = await spoken_reply(client, "second")
    assert (
        done["metadata"]["tts_route"]
        == "elevenlabs:default/eleven_flash_v2_5=skipped:disabled:auth;internal:fake/fake=served"
    )
    assert emulator.stream_input.opened == 1  # the refused profile is not tried again
    assert len(emulator.recorder.requests) == 1
    assert all(r.profile_id == "internal:fake" for r in await tts_rows(patchbay))
