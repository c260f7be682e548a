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

from providers.vault.secret import Secret
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
from voice.engines import InternalEngines
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
        admin_token="admin-test-token",
        allow_private_base_urls=True,
        allow_plain_http_base_urls=True,
        master_key="v1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=",
        voice_whisper_model_dir=whisper_dir,
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


async def test_elevenlabs_429_falls_back_to_espeak_and_the_call_goes_on(
    patchbay: Patchbay, connect: Any, llm: OpenAIEmulator, eleven: Any
) -> None:
    emulator, url = eleven
    async with patchbay.services.db.session() as s:
        await patchbay.services.connections().create(
            s, patchbay.org_id, provider="elevenlabs", base_url=url, key=Secret("xi-CANARY-0123456789abcdef")
        )
    patchbay.services.config_changed(patchbay.org_id)
    runtime = patchbay.runtime
    runtime.internal = InternalEngines(stt=FakeSTT(), tts=EspeakTTS())
    emulator.recorder.script(el.too_many_concurrent(), el.quota_exceeded())
    llm.enqueue(
        Scenario(text="First answer."), Scenario(text="Second answer."), Scenario(text="Third answer.")
    )

    client: Client = await connect()
    await client.until("session.created")
    await client.send(
        "session.update", session={"type": "realtime", "audio": {"input": {"turn_detection": None}}}
    )
    providers = []
    for turn in range(3):
        await client.send(
            "conversation.item.create",
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": f"turn {turn}"}],
            },
        )
        await client.send("response.create")
        events = await client.until("response.done", within=20)
        done = events[-1]["response"]
        assert done["status"] == "completed"
        assert any(e["type"] == "response.output_audio.delta" for e in events)
        providers.append(done["metadata"]["tts_provider"])
    # 429, then 401 quota_exceeded: espeak-ng speaks; then ElevenLabs is healthy again.
    assert providers == ["internal:espeak", "internal:espeak", "elevenlabs:default"]
    assert len(emulator.recorder.requests) == 3
