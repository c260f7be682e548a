"""Acceptance: the official openai SDK's realtime client against Patchbay, with the internal
engines (Whisper STT, espeak-ng TTS) and an emulated LLM; and ElevenLabs TTS failing over to
espeak-ng inside a live session.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import openai
import pytest
from sqlalchemy import select

from billing.tables import UsageRecord
from providers.vault.secret import Secret
from routing.speech import BuiltIn
from server import accounts
from server.realtime.runtime import EnginesFactory
from server.settings import Settings
from tests.emulators import elevenlabs as el
from tests.emulators.harness import ServedApp
from tests.emulators.openai import OpenAIEmulator, Scenario
from tests.offline_voice import whisper_model
from tests.server.realtime.conftest import Client, Patchbay
from tests.voice.fakes import FakeSTT
from tests.voice.speech import silence, speak
from tests.voice.wer import word_error_rate
from voice.audio import resample
from voice.tts.espeak import EspeakTTS

pytestmark = pytest.mark.slow
QUESTION = "Please schedule a meeting with the design team for tomorrow morning."
REPLY = "Done. The meeting is booked for nine tomorrow morning."


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return whisper_model(tmp_path_factory.mktemp("models") / "whisper-base")


@pytest.fixture
def settings(tmp_path: Path, db_url: str, whisper_dir: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=db_url,
        admin_token="admin-test-token-0123456789abcdefghij",
        allow_private_base_urls=True,
        allow_plain_http_base_urls=True,
        master_key="v1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=",
        voice_whisper_model_dir=whisper_dir,
        voice_tts_streaming=False,  # these pin the per-sentence path; test_streamed_tts.py the other
    )


@pytest.fixture
def engines() -> EnginesFactory | None:
    return None  # the internal engines, built from the settings, as in production


async def test_openai_sdk_realtime_turn_with_internal_engines(
    sdk: openai.AsyncOpenAI, llm: OpenAIEmulator, patchbay: Patchbay
) -> None:
    llm.enqueue(Scenario(text=REPLY))
    question = resample(silence(400) + speak(QUESTION) + silence(1000), 16_000, 24_000)
    seen: list[Any] = []
    async with sdk.realtime.connect(model="gpt-realtime") as connection:
        await connection.session.update(
            session={
                "type": "realtime",
                "instructions": "You book meetings.",
                "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}},
            }
        )
        step = 24_000 * 2 * 40 // 1000  # 40 ms chunks, as a microphone would send them
        for offset in range(0, len(question), step):
            await connection.input_audio_buffer.append(
                audio=base64.b64encode(question[offset : offset + step]).decode()
            )
        async with asyncio.timeout(60):
            async for event in connection:
                seen.append(event)
                if event.type == "response.done":
                    break

    types = [e.type for e in seen]
    for expected in (
        "session.created",
        "session.updated",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.output_audio.delta",
        "response.output_audio_transcript.delta",
        "response.output_audio_transcript.done",
        "response.done",
    ):
        assert expected in types, expected
    transcript = next(
        e for e in seen if e.type == "conversation.item.input_audio_transcription.completed"
    ).transcript
    assert word_error_rate([QUESTION], [transcript]) < 0.25, transcript
    spoken = next(e for e in seen if e.type == "response.output_audio_transcript.done").transcript
    assert spoken == REPLY
    audio = b"".join(base64.b64decode(e.delta) for e in seen if e.type == "response.output_audio.delta")
    assert len(audio) > 24_000 * 2  # more than a second of 24 kHz speech
    done = seen[-1].response
    assert done.status == "completed"
    assert done.usage is not None and done.usage.output_tokens and done.usage.output_tokens > 0
    assert llm.chat_requests[0].json["messages"][0] == {"role": "system", "content": "You book meetings."}


@pytest.fixture
def eleven() -> Any:
    emulator = el.ElevenLabsEmulator(tone_seconds=0.3)
    with ServedApp(emulator.app) as served:
        yield emulator, served.url


async def with_elevenlabs(patchbay: Patchbay, url: str, **chains: list[str]) -> None:
    """An ElevenLabs connection on the emulator, and the org's speech chains."""
    async with patchbay.services.db.session() as s:
        await patchbay.services.connections().create(
            s, patchbay.org_id, provider="elevenlabs", base_url=url, key=Secret("xi-CANARY-0123456789abcdef")
        )
        await patchbay.services.agents().set_org_routing(
            s, patchbay.org_id, chains={"chat": ["openai/gpt-4o-mini"], **chains}
        )
    patchbay.services.config_changed(patchbay.org_id)


async def spoken_reply(client: Client, text: str) -> dict[str, Any]:
    """One text turn answered aloud; its `response.done` response."""
    await client.send(
        "conversation.item.create",
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]},
    )
    await client.send("response.create")
    events = await client.until("response.done", within=20)
    assert any(e["type"] == "response.output_audio.delta" for e in events)
    done: dict[str, Any] = events[-1]["response"]
    assert done["status"] == "completed"
    return done


async def quiet_session(connect: Any) -> Client:
    client: Client = await connect()
    await client.until("session.created")
    await client.send(
        "session.update", session={"type": "realtime", "audio": {"input": {"turn_detection": None}}}
    )
    return client


async def tts_segments(patchbay: Patchbay) -> list[tuple[str | None, str]]:
    await patchbay.services.usage.flush()
    async with patchbay.services.db.session() as s:
        rows = (await s.execute(select(UsageRecord).where(UsageRecord.segment == "tts"))).scalars().all()
    return [(r.profile_id, r.billing_source) for r in sorted(rows, key=lambda r: r.created_at)]


async def test_a_refused_tts_key_falls_to_espeak_and_is_not_called_again_until_replaced(
    patchbay: Patchbay, connect: Any, llm: OpenAIEmulator, eleven: Any
) -> None:
    emulator, url = eleven
    await with_elevenlabs(patchbay, url, tts=["elevenlabs/eleven_flash_v2_5"])
    patchbay.runtime.internal = BuiltIn(stt=FakeSTT(), tts=EspeakTTS())
    emulator.recorder.script(el.invalid_api_key())
    llm.enqueue(*(Scenario(text=f"Answer {n}.") for n in range(4)))

    # The first turn: ElevenLabs refuses the key, espeak-ng speaks, the call goes on.
    client = await quiet_session(connect)
    done = await spoken_reply(client, "first")
    assert done["metadata"]["tts_provider"] == "internal:espeak"
    assert (
        done["metadata"]["tts_route"]
        == "elevenlabs:default/eleven_flash_v2_5=failed:auth;internal:espeak/espeak=served"
    )
    # The next turn, and a new session: the disabled profile is skipped, with the reason.
    done = await spoken_reply(client, "second")
    skipped = "elevenlabs:default/eleven_flash_v2_5=skipped:disabled:auth;internal:espeak/espeak=served"
    assert done["metadata"]["tts_route"] == skipped
    other = await quiet_session(connect)
    assert (await spoken_reply(other, "third"))["metadata"]["tts_route"] == skipped
    assert len(emulator.recorder.requests) == 1

    # A new key ends the disable window: ElevenLabs speaks again.
    async with patchbay.services.db.session() as s:
        await patchbay.services.connections().replace_key(
            s, patchbay.org_id, "elevenlabs:default", Secret("xi-CANARY-fedcba9876543210")
        )
    patchbay.services.config_changed(patchbay.org_id)
    await patchbay.services.gateway.registry.get(patchbay.org_id)
    fresh = await quiet_session(connect)
    done = await spoken_reply(fresh, "fourth")
    assert done["metadata"]["tts_route"] == "elevenlabs:default/eleven_flash_v2_5=served"
    assert len(emulator.recorder.requests) == 2

    # One usage segment per sentence spoken, billed to whoever spoke it.
    segments = await tts_segments(patchbay)
    assert segments[:3] == [("internal:espeak", "platform")] * 3
    assert segments[3:] == [("elevenlabs:default", "byok")]


async def test_a_refused_stt_key_falls_to_the_builtin_engine_and_is_then_skipped(
    patchbay: Patchbay, connect: Any, llm: OpenAIEmulator, eleven: Any
) -> None:
    emulator, url = eleven
    await with_elevenlabs(patchbay, url, stt=["elevenlabs/scribe_v1"])
    patchbay.runtime.internal = BuiltIn(stt=FakeSTT("internal:whisper", text="book a table"), tts=EspeakTTS())
    emulator.recorder.script(el.invalid_api_key())
    llm.enqueue(*(Scenario(text=f"Answer {n}.") for n in range(2)))

    client = await quiet_session(connect)
    routes = []
    for _ in range(2):
        await client.send("input_audio_buffer.append", audio=base64.b64encode(bytes(24_000 * 2)).decode())
        await client.send("input_audio_buffer.commit")
        events = await client.until("conversation.item.input_audio_transcription.completed", within=20)
        assert events[-1]["transcript"] == "book a table"
        await client.send("response.create")
        done = (await client.until("response.done", within=20))[-1]["response"]
        routes.append(done["metadata"]["stt_route"])
    assert routes == [
        "elevenlabs:default/scribe_v1=failed:auth;internal:whisper/whisper=served",
        "elevenlabs:default/scribe_v1=skipped:disabled:auth;internal:whisper/whisper=served",
    ]
    assert len(emulator.recorder.requests) == 1


async def test_an_agents_own_tts_chain_speaks_for_its_key_and_other_keys_use_the_orgs(
    patchbay: Patchbay, connect: Any, llm: OpenAIEmulator, eleven: Any
) -> None:
    emulator, url = eleven
    await with_elevenlabs(patchbay, url, tts=["elevenlabs/eleven_flash_v2_5"])
    async with patchbay.services.db.session() as s:
        await patchbay.services.agents().create(
            s, patchbay.org_id, "concierge", chains={"tts": ["elevenlabs/eleven_multilingual_v2"]}
        )
        agent_key = (
            await accounts.create_api_key(s, patchbay.org_id, agent="concierge", name="concierge")
        ).key
    patchbay.services.config_changed(patchbay.org_id)
    patchbay.runtime.internal = BuiltIn(stt=FakeSTT(), tts=EspeakTTS())
    llm.enqueue(Scenario(text="From the agent."), Scenario(text="From the org."))

    client: Client = await connect(key=agent_key)
    await client.until("session.created")
    await client.send(
        "session.update", session={"type": "realtime", "audio": {"input": {"turn_detection": None}}}
    )
    agent_done = await spoken_reply(client, "hello")
    org_done = await spoken_reply(await quiet_session(connect), "hello")

    assert agent_done["metadata"]["tts_route"] == "elevenlabs:default/eleven_multilingual_v2=served"
    assert org_done["metadata"]["tts_route"] == "elevenlabs:default/eleven_flash_v2_5=served"
    assert [r.json["model_id"] for r in emulator.recorder.requests] == [
        "eleven_multilingual_v2",
        "eleven_flash_v2_5",
    ]
