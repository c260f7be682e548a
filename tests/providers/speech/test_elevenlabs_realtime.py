"""ElevenLabs realtime STT (Scribe v2 Realtime WebSocket) against the emulator, its pure wire
checked against the official SDK's URL builder and types, and the SDK's own realtime client
driving the emulator."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

import numpy as np
import pytest
from elevenlabs.realtime import AudioFormat, CommitStrategy, RealtimeEvents, ScribeRealtime
from elevenlabs.types import (
    CommittedTranscriptPayload,
    InputAudioChunkPayload,
    PartialTranscriptPayload,
    ScribeAuthErrorPayload,
    ScribeInsufficientAudioActivityErrorPayload,
    ScribeQuotaExceededErrorPayload,
    ScribeRateLimitedErrorPayload,
    ScribeTranscriberErrorPayload,
    SessionStartedPayload,
)

from providers.contract import ErrorClass
from providers.errors import ProviderError
from providers.speech.elevenlabs_realtime import ElevenLabsRealtimeOptions, ElevenLabsRealtimeSTT
from providers.speech.elevenlabs_realtime_wire import (
    MAX_CHUNK_BYTES,
    Committed,
    Failure,
    Partial,
    Started,
    audio_message,
    chunks,
    commit_message,
    parse_server_message,
    realtime_url,
    wire_rate,
)
from providers.speech.streaming_stt import StreamingSTT
from tests.emulators import elevenlabs as el
from tests.emulators.elevenlabs_stt_ws import DEFAULT_TRANSCRIPT
from tests.emulators.harness import ServedApp, free_port
from tests.emulators.scripted import CANARY_KEY, CanaryCredential, Scenario


@pytest.fixture
def emulator() -> el.ElevenLabsEmulator:
    return el.ElevenLabsEmulator()


def engine(url: str, *, key: str = CANARY_KEY, commit_within: float = 5.0) -> ElevenLabsRealtimeSTT:
    return ElevenLabsRealtimeSTT(
        base_url=url,
        credential=CanaryCredential(key),
        name="elevenlabs:test",
        options=ElevenLabsRealtimeOptions(),
        commit_within=commit_within,
    )


def tone(rate: int, seconds: float) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()


def test_the_url_is_the_sdks_own() -> None:
    sdk = ScribeRealtime(api_key="unused", base_url="wss://api.elevenlabs.io")
    expected = sdk._build_websocket_url(
        model_id="scribe_v2_realtime",
        audio_format="pcm_24000",
        commit_strategy="manual",
        language_code="en",
        include_timestamps=False,
    )
    ours = realtime_url(
        "https://api.elevenlabs.io", model_id="scribe_v2_realtime", sample_rate=24_000, language="en"
    )
    assert ours == expected
    assert realtime_url("http://127.0.0.1:9/", model_id="m", sample_rate=16_000, language=None).startswith(
        "ws://127.0.0.1:9/v1/speech-to-text/realtime?model_id=m&audio_format=pcm_16000&commit_strategy=manual"
    )


def test_messages_are_the_sdks_input_audio_chunk() -> None:
    audio = json.loads(audio_message(b"\x01\x00\x02\x00", 24_000))
    chunk = InputAudioChunkPayload.model_validate(audio)
    assert (chunk.commit, chunk.sample_rate, chunk.audio_base_64) == (False, 24_000, "AQACAA==")
    assert set(audio) <= set(InputAudioChunkPayload.model_fields)
    # What the SDK's `RealtimeConnection.commit` sends, exactly.
    commit = {"message_type": "input_audio_chunk", "audio_base_64": "", "commit": True, "sample_rate": 16_000}
    assert json.loads(commit_message(16_000)) == commit
    assert all(len(c) <= MAX_CHUNK_BYTES for c in chunks(bytes(3 * MAX_CHUNK_BYTES + 2)))
    assert b"".join(chunks(bytes(range(200)) * 100)) == bytes(range(200)) * 100


def test_rates_the_endpoint_does_not_take_are_resampled_to_16k() -> None:
    assert [wire_rate(r) for r in (8000, 16000, 24000, 48000, 11025, 32000)] == [
        8000,
        16000,
        24000,
        48000,
        16000,
        16000,
    ]
    assert {f.value for f in AudioFormat} >= {f"pcm_{wire_rate(r)}" for r in (8000, 11025, 24000)}


def test_server_messages_built_by_the_sdk_parse() -> None:
    started = SessionStartedPayload.model_validate(
        {"session_id": "s1", "config": {"sample_rate": 16000, "audio_format": "pcm_16000"}}
    )
    assert parse_server_message(started.model_dump_json()) == Started()
    assert parse_server_message(PartialTranscriptPayload(text="hel").model_dump_json()) == Partial("hel")
    committed = CommittedTranscriptPayload(text=" Hello there. ").model_dump_json()
    assert parse_server_message(committed) == Committed("Hello there.")
    for payload, kind in (
        (ScribeAuthErrorPayload(error="bad key"), "auth_error"),
        (ScribeQuotaExceededErrorPayload(error="quota"), "quota_exceeded"),
        (ScribeInsufficientAudioActivityErrorPayload(error="quiet"), "insufficient_audio_activity"),
    ):
        event = parse_server_message(payload.model_dump_json())
        assert isinstance(event, Failure) and event.code == kind
    assert (
        parse_server_message('{"message_type": "committed_transcript_with_timestamps", "text": "x"}') is None
    )
    assert isinstance(parse_server_message("not json"), Failure)


async def test_streams_audio_and_returns_the_committed_transcript(
    served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    stt = engine(served.url)
    assert isinstance(stt, StreamingSTT)
    emulator.recorder.script(Scenario(transcript="book a table for two"))
    stream = await stt.open_stream(sample_rate=24_000, language="en")
    audio = tone(24_000, 1.0)
    for i in range(0, len(audio), 960):  # 20 ms frames, as a session feeds them
        stream.feed(audio[i : i + 960])
    transcript = await stream.commit()
    await stream.aclose()
    await stream.aclose()  # idempotent
    assert transcript.text == "book a table for two"
    assert transcript.audio_seconds == pytest.approx(1.0)
    assert (transcript.engine, transcript.model) == ("elevenlabs:test", "scribe_v2_realtime")
    assert stream.partial  # the interim transcripts came before the committed one
    rt = emulator.realtime_stt
    assert rt.queries[0]["audio_format"] == "pcm_24000"  # the caller's rate: nothing resampled
    assert rt.queries[0]["language_code"] == "en"
    assert len(rt.audio[0]) == pytest.approx(2 * 16_000, abs=64)  # all of it arrived
    assert rt.received[-1]["commit"] is True and rt.committed == 1
    request = emulator.recorder.requests[0]
    assert request.headers["xi-api-key"] == CANARY_KEY and CANARY_KEY not in json.dumps(request.query)


async def test_a_rate_the_endpoint_does_not_take_is_resampled(
    served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    stream = await engine(served.url).open_stream(sample_rate=11_025)
    stream.feed(tone(11_025, 0.5))
    transcript = await stream.commit()
    await stream.aclose()
    assert transcript.audio_seconds == pytest.approx(0.5, abs=1e-3)
    assert emulator.realtime_stt.queries[0]["audio_format"] == "pcm_16000"
    assert len(emulator.realtime_stt.audio[0]) == pytest.approx(16_000, abs=64)


async def test_batch_transcribe_goes_over_one_stream(
    served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    transcript = await engine(served.url).transcribe(tone(16_000, 0.4))
    assert transcript.text == DEFAULT_TRANSCRIPT
    assert transcript.audio_seconds == pytest.approx(0.4)
    assert emulator.realtime_stt.opened == 1 and emulator.realtime_stt.committed == 1


async def test_a_refused_key_fails_the_open_as_auth_and_is_never_logged(
    served: ServedApp, emulator: el.ElevenLabsEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.realtime_stt.valid_keys = {"sk_other"}
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ProviderError) as caught:
        await engine(served.url).open_stream(sample_rate=16_000)
    error = caught.value
    assert (error.error_class, error.provider, error.model) == (
        ErrorClass.AUTH,
        "elevenlabs:test",
        "scribe_v2_realtime",
    )
    assert error.provider_code == "auth_error"
    assert CANARY_KEY not in str(error) and CANARY_KEY not in caplog.text


async def test_a_refused_upgrade_is_classified_like_the_rest_api(
    served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    emulator.realtime_stt.deny_upgrade = True
    emulator.recorder.script(el.echo_key_error(CANARY_KEY))
    with pytest.raises(ProviderError) as caught:
        await engine(served.url).open_stream(sample_rate=16_000)
    assert (caught.value.error_class, caught.value.status) == (ErrorClass.AUTH, 401)
    assert CANARY_KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        (el.quota_exceeded(), ErrorClass.QUOTA_EXHAUSTED),
        (el.too_many_concurrent(), ErrorClass.RATE_LIMIT),
        (el.server_error(), ErrorClass.SERVER_ERROR),
    ],
    ids=["quota", "concurrency", "server"],
)
async def test_an_error_at_the_commit_is_typed(
    served: ServedApp, emulator: el.ElevenLabsEmulator, scenario: Scenario, expected: ErrorClass
) -> None:
    emulator.realtime_stt.fail_on_commit = True
    emulator.recorder.script(scenario)
    stream = await engine(served.url).open_stream(sample_rate=16_000)
    stream.feed(tone(16_000, 0.2))
    with pytest.raises(ProviderError) as caught:
        await stream.commit()
    await stream.aclose()
    assert caught.value.error_class is expected


async def test_no_committed_transcript_in_time_is_a_timeout(
    served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    emulator.realtime_stt.stall_commit = True
    stream = await engine(served.url, commit_within=0.2).open_stream(sample_rate=16_000)
    stream.feed(tone(16_000, 0.2))
    with pytest.raises(ProviderError) as caught:
        await stream.commit()
    await stream.aclose()
    assert caught.value.error_class is ErrorClass.TIMEOUT


async def test_nothing_listening_is_a_network_error() -> None:
    with pytest.raises(ProviderError) as caught:
        await engine(f"http://127.0.0.1:{free_port()}").open_stream(sample_rate=16_000)
    assert caught.value.error_class is ErrorClass.NETWORK
    assert CANARY_KEY not in str(caught.value)


async def test_closing_before_the_commit_closes_the_connection(
    served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    stream = await engine(served.url).open_stream(sample_rate=16_000)
    stream.feed(tone(16_000, 0.1))
    await stream.aclose()
    stream.feed(tone(16_000, 0.1))  # ignored once closed
    for _ in range(200):
        if emulator.realtime_stt.closed_by_client:
            break
        await asyncio.sleep(0.01)  # the emulator's thread sees the close
    assert emulator.realtime_stt.closed_by_client == 1
    assert emulator.realtime_stt.committed == 0


async def test_the_sdks_own_realtime_client_transcribes_through_the_emulator(
    served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    """`ScribeRealtime.connect` (what an ElevenLabs user runs) against the emulator: the
    emulator takes the SDK's URL and messages, and every answer is one of its events."""
    emulator.recorder.script(Scenario(transcript="what time is it"))
    sdk = ScribeRealtime(api_key=CANARY_KEY, base_url=served.url.replace("http://", "ws://"))
    connection = await sdk.connect(
        {
            "model_id": "scribe_v2_realtime",
            "audio_format": AudioFormat.PCM_16000,
            "sample_rate": 16_000,
            "commit_strategy": CommitStrategy.MANUAL,
        }
    )
    seen: dict[str, list[dict[str, Any]]] = {}
    committed = asyncio.Event()

    def record(kind: str) -> Any:
        def handler(data: dict[str, Any]) -> None:
            seen.setdefault(kind, []).append(data)
            if kind == RealtimeEvents.COMMITTED_TRANSCRIPT:
                committed.set()

        return handler

    for kind in (
        RealtimeEvents.SESSION_STARTED,
        RealtimeEvents.PARTIAL_TRANSCRIPT,
        RealtimeEvents.COMMITTED_TRANSCRIPT,
        RealtimeEvents.ERROR,
    ):
        connection.on(kind, record(kind))
    audio = tone(16_000, 1.0)
    for i in range(0, len(audio), 3200):
        await connection.send({"audio_base_64": base64.b64encode(audio[i : i + 3200]).decode()})
    await connection.commit()
    await asyncio.wait_for(committed.wait(), 10)
    await connection.close()
    assert RealtimeEvents.ERROR not in seen
    assert seen[RealtimeEvents.COMMITTED_TRANSCRIPT][0]["text"] == "what time is it"
    assert seen[RealtimeEvents.SESSION_STARTED][0]["config"]["audio_format"] == "pcm_16000"
    assert seen[RealtimeEvents.PARTIAL_TRANSCRIPT]
    # The SDK sends `previous_text: null` on each chunk: the emulator accepts what the SDK sends.
    assert "previous_text" in emulator.realtime_stt.received[0]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (ScribeRateLimitedErrorPayload(error="slow down"), ErrorClass.RATE_LIMIT),
        (ScribeTranscriberErrorPayload(error="boom"), ErrorClass.SERVER_ERROR),
        (ScribeAuthErrorPayload(error="You must be authenticated"), ErrorClass.AUTH),
    ],
    ids=["rate", "transcriber", "auth"],
)
def test_error_types_map_through_the_speech_error_table(payload: Any, expected: ErrorClass) -> None:
    from providers.speech.elevenlabs_ws_wire import stream_error

    event = parse_server_message(payload.model_dump_json())
    assert isinstance(event, Failure)
    error = stream_error(provider="p", close_code=1011, message=event.message, code=event.code)
    assert error.error_class is expected
