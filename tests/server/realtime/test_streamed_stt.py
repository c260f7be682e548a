"""Turns heard over ElevenLabs' realtime STT WebSocket through a real Patchbay (emulated
ElevenLabs): an espeak-ng question streamed while it is spoken and recognised from the audio
the emulator received, one usage segment, and fallback to HTTP Scribe or the built-in engine."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from billing.usage import UsageRecord
from routing.speech import BuiltIn
from server.realtime.runtime import EnginesFactory
from tests.emulators import elevenlabs as el
from tests.emulators.harness import ServedApp
from tests.emulators.openai import OpenAIEmulator, Scenario
from tests.emulators.scripted import ok
from tests.server.realtime.conftest import Client, Patchbay
from tests.server.realtime.test_acceptance import with_elevenlabs
from tests.voice.fakes import FakeSTT, FakeTTS
from tests.voice.speech import SENTENCES, silence, speak
from voice.audio import resample
from voice.stt.pocketsphinx import PocketsphinxSTT

QUESTION = "What time does the pharmacy close on Sunday?"
REALTIME = "elevenlabs/scribe_v2_realtime"


@pytest.fixture
def engines() -> EnginesFactory | None:
    return None  # routed speech, as in production


@pytest.fixture(scope="module")
def recogniser() -> Iterator[PocketsphinxSTT]:
    """What the emulated provider hears with: exact on the test sentences, so a transcript
    proves the streamed audio arrived whole, in order and at the declared rate."""
    engine = PocketsphinxSTT(phrases=SENTENCES, max_concurrency=1)
    yield engine
    engine.close()


@pytest.fixture
def eleven(recogniser: PocketsphinxSTT) -> Iterator[tuple[el.ElevenLabsEmulator, str]]:
    emulator = el.ElevenLabsEmulator(tone_seconds=0.3)

    async def transcribe(pcm16_16k: bytes) -> str:
        return (await recogniser.transcribe(pcm16_16k)).text

    emulator.realtime_stt.transcribe = transcribe
    with ServedApp(emulator.app) as served:
        yield emulator, served.url


async def speak_question(client: Client) -> list[dict[str, Any]]:
    """The question at 24 kHz in 100 ms appends, then the silence that ends the turn; the
    events up to its `response.done`."""
    pcm = resample(silence(300) + speak(QUESTION) + silence(900), 16_000, 24_000)
    step = 24_000 * 2 // 10
    for i in range(0, len(pcm), step):
        await client.send("input_audio_buffer.append", audio=base64.b64encode(pcm[i : i + step]).decode())
    return await client.until("response.done", within=30)


async def stt_rows(patchbay: Patchbay) -> list[UsageRecord]:
    await patchbay.services.usage.flush()
    async with patchbay.services.db.session() as s:
        rows = (await s.execute(select(UsageRecord).where(UsageRecord.segment == "stt"))).scalars().all()
    return sorted(rows, key=lambda r: r.created_at)


def stt_requests(emulator: el.ElevenLabsEmulator) -> list[str]:
    """The STT calls the emulator saw (the org's ElevenLabs voice also speaks the replies)."""
    return [r.path for r in emulator.recorder.requests if r.path.startswith("/v1/speech-to-text")]


def transcript_of(events: list[dict[str, Any]]) -> str:
    done = next(e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed")
    return str(done["transcript"])


async def test_a_spoken_question_is_streamed_and_recognised(
    patchbay: Patchbay, connect: Any, llm: OpenAIEmulator, eleven: Any
) -> None:
    emulator, url = eleven
    await with_elevenlabs(patchbay, url, stt=[REALTIME])
    patchbay.runtime.internal = BuiltIn(stt=FakeSTT("internal:whisper"), tts=FakeTTS("internal:fake"))
    llm.enqueue(Scenario(text="It closes at six."))

    client = await connect()
    await client.until("session.created")
    events = await speak_question(client)
    assert transcript_of(events) == "what time does the pharmacy close on sunday"
    done = events[-1]["response"]
    assert done["status"] == "completed"
    assert done["metadata"]["stt_route"] == "elevenlabs:default/scribe_v2_realtime=served"
    rt = emulator.realtime_stt
    assert rt.opened == 1 and rt.committed == 1
    assert rt.queries[0]["audio_format"] == "pcm_24000"  # the session's own rate, not resampled
    assert stt_requests(emulator) == ["/v1/speech-to-text/realtime"]
    (row,) = await stt_rows(patchbay)
    assert (row.profile_id, row.billing_source, row.model) == (
        "elevenlabs:default",
        "byok",
        "scribe_v2_realtime",
    )
    # Billed by the seconds streamed: the turn from its padding through the endpoint's silence.
    assert len(rt.audio[0]) / 32_000 == pytest.approx(row.audio_seconds, abs=0.05)
    assert 2.0 < row.audio_seconds < 5.0


async def test_a_stream_failing_at_the_commit_falls_back_to_http_scribe_over_the_turns_audio(
    patchbay: Patchbay, connect: Any, llm: OpenAIEmulator, eleven: Any
) -> None:
    emulator, url = eleven
    await with_elevenlabs(patchbay, url, stt=[REALTIME, "elevenlabs/scribe_v1"])
    patchbay.runtime.internal = BuiltIn(stt=FakeSTT("internal:whisper"), tts=FakeTTS("internal:fake"))
    emulator.realtime_stt.fail_on_commit = True
    emulator.recorder.script(el.server_error(), ok(transcript="what time does the pharmacy close"))
    llm.enqueue(Scenario(text="It closes at six."))

    client = await connect()
    await client.until("session.created")
    events = await speak_question(client)
    assert transcript_of(events) == "what time does the pharmacy close"
    route = events[-1]["response"]["metadata"]["stt_route"]
    assert route == (
        "elevenlabs:default/scribe_v2_realtime=failed:server_error;elevenlabs:default/scribe_v1=served"
    )
    assert stt_requests(emulator) == ["/v1/speech-to-text/realtime", "/v1/speech-to-text"]
    upload = emulator.recorder.requests[1]
    assert upload.form["model_id"] == "scribe_v1" and len(upload.files["file"]) > 2 * 32_000
    (row,) = await stt_rows(patchbay)
    assert (row.profile_id, row.model) == ("elevenlabs:default", "scribe_v1")


async def test_a_refused_key_at_the_open_falls_to_the_builtin_engine_and_is_then_skipped(
    patchbay: Patchbay, connect: Any, llm: OpenAIEmulator, eleven: Any
) -> None:
    emulator, url = eleven
    await with_elevenlabs(patchbay, url, stt=[REALTIME])
    builtin = FakeSTT("internal:whisper", text="what time does the pharmacy close on sunday")
    patchbay.runtime.internal = BuiltIn(stt=builtin, tts=FakeTTS("internal:fake"))
    emulator.realtime_stt.valid_keys = {"sk_some_other_key"}
    llm.enqueue(Scenario(text="Six."), Scenario(text="Six again."))

    client = await connect()
    await client.until("session.created")
    routes = []
    for _ in range(2):
        events = await speak_question(client)
        assert transcript_of(events) == "what time does the pharmacy close on sunday"
        routes.append(events[-1]["response"]["metadata"]["stt_route"])
    assert routes == [
        "elevenlabs:default/scribe_v2_realtime=failed:auth;internal:whisper/whisper=served",
        "elevenlabs:default/scribe_v2_realtime=skipped:disabled:auth;internal:whisper/whisper=served",
    ]
    assert emulator.realtime_stt.opened == 1  # the refused profile is not tried again
    assert len(builtin.calls) == 2
    assert all(r.profile_id == "internal:whisper" for r in await stt_rows(patchbay))
