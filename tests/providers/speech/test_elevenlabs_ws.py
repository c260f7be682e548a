"""ElevenLabs streamed TTS (`stream-input` WebSocket) against the emulator, and its pure wire."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from elevenlabs.types import AudioOutput, InitializeConnection, SendText

from providers.contract import ErrorClass
from providers.errors import ProviderError
from providers.speech.elevenlabs import ElevenLabsTTSOptions, VoiceSettings
from providers.speech.elevenlabs_ws import ElevenLabsStreamTTS
from providers.speech.elevenlabs_ws_wire import (
    AudioChunk,
    Failure,
    Final,
    GenerationSchedule,
    init_message,
    parse_server_message,
    stream_error,
    stream_input_url,
    text_message,
    wire_text,
)
from providers.speech.streaming import SpokenAudio, TTSStream
from tests.emulators import elevenlabs as el
from tests.emulators.elevenlabs_ws import WsFailure, audio_message
from tests.emulators.harness import ServedApp
from tests.emulators.scripted import CANARY_KEY, CanaryCredential


@pytest.fixture
def emulator() -> el.ElevenLabsEmulator:
    return el.ElevenLabsEmulator()


def engine(
    url: str, *, key: str = CANARY_KEY, first_audio: float = 5.0, **options: object
) -> ElevenLabsStreamTTS:
    return ElevenLabsStreamTTS(
        base_url=url,
        credential=CanaryCredential(key),
        name="elevenlabs:test",
        options=ElevenLabsTTSOptions(output_format="pcm_24000", **options),  # type: ignore[arg-type]
        first_audio=first_audio,
    )


async def speak(stream: TTSStream, chunks: list[str], *, flush: bool = True) -> list[SpokenAudio]:
    async def feed() -> None:
        for chunk in chunks:
            await stream.send(chunk, flush=flush)
        await stream.end()

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(feed())
            return [spoken async for spoken in stream.audio()]
    except* ProviderError as failed:
        raise failed.exceptions[0] from None
    finally:
        await stream.aclose()


def test_url_and_messages_are_what_the_sdk_types_accept() -> None:
    options = ElevenLabsTTSOptions(output_format="pcm_24000", voice_settings=VoiceSettings(stability=0.4))
    url = stream_input_url("https://api.elevenlabs.io", "voice 1", options)
    assert url.startswith("wss://api.elevenlabs.io/v1/text-to-speech/voice%201/stream-input?")
    assert "model_id=eleven_flash_v2_5" in url and "output_format=pcm_24000" in url
    assert stream_input_url("http://127.0.0.1:9", "v", options).startswith("ws://127.0.0.1:9/")
    init = json.loads(init_message(options))
    assert InitializeConnection.model_validate(init).voice_settings is not None
    config = InitializeConnection.model_validate(init).generation_config
    assert config is not None and config.chunk_length_schedule == [120, 160, 250, 290]
    assert "xi-api-key" not in init  # the key travels in the upgrade request's header only
    assert wire_text("  Hello\n there.") == "Hello there. " and wire_text(" \n") == ""
    text = json.loads(text_message("Hello there. ", flush=True))
    assert text == {"text": "Hello there. ", "flush": True}
    assert SendText.model_validate(text).flush is True
    assert json.loads(text_message("Hello ")) == {"text": "Hello "}
    with pytest.raises(ValueError):
        ElevenLabsTTSOptions(chunk_length_schedule=(40, 160))


def test_the_schedule_mirror_knows_which_send_generates() -> None:
    schedule = GenerationSchedule((60, 100))
    assert [schedule.add(n) for n in (30, 29, 1)] == [False, False, True]  # 60 buffered
    assert [schedule.add(n) for n in (50, 20)] == [False, False]  # the second step is 100
    assert schedule.add(5, flush=True) is True  # a flush generates what is buffered
    assert schedule.add(0, flush=True) is False  # nothing buffered, nothing generated
    assert [schedule.add(n) for n in (99, 1)] == [False, True]  # the last step repeats


def test_server_messages_parse() -> None:
    event = parse_server_message(audio_message(b"\x01\x02", "Hi "))
    assert event == AudioChunk(b"\x01\x02", "Hi ")
    assert AudioOutput.model_validate_json(audio_message(b"\x01\x02", "Hi ")).audio
    assert parse_server_message('{"isFinal": true}') == Final()
    assert parse_server_message('{"audio": null, "isFinal": null}') is None
    assert parse_server_message('{"message": "Invalid API key", "error": "invalid_api_key"}') == Failure(
        "Invalid API key", "invalid_api_key"
    )
    assert isinstance(parse_server_message("not json"), Failure)


@pytest.mark.parametrize(
    ("close", "message", "code", "expected"),
    [
        (1008, "Invalid API key", "invalid_api_key", ErrorClass.AUTH),
        (1008, "You have exceeded your quota", None, ErrorClass.QUOTA_EXHAUSTED),
        (1008, "Input timeout exceeded", None, ErrorClass.TIMEOUT),
        (1008, "Unknown field x", None, ErrorClass.INVALID_REQUEST),
        (1011, "", None, ErrorClass.SERVER_ERROR),
        (1013, "", None, ErrorClass.OVERLOADED),
        (1006, "", None, ErrorClass.NETWORK),
    ],
)
def test_errors_are_classified(close: int, message: str, code: str | None, expected: ErrorClass) -> None:
    assert stream_error(provider="p", close_code=close, message=message, code=code).error_class is expected


def test_errors_never_carry_the_key() -> None:
    error = stream_error(
        provider="p", close_code=1008, message=f"Invalid API key {CANARY_KEY}", secrets=(CANARY_KEY,)
    )
    assert CANARY_KEY not in error.message


async def test_speaks_each_chunk_with_its_alignment(
    served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    stream = await engine(served.url).open_stream(voice="v1")
    spoken = await speak(stream, ["Hello there.", "How are you?"])
    assert "".join(s.text for s in spoken) == "Hello there. How are you? "
    assert all(len(s.pcm) % 2 == 0 and s.pcm for s in spoken)
    assert stream.characters == len("Hello there. How are you?")
    sent = emulator.stream_input.received
    assert sent[0] == {"text": " ", "generation_config": {"chunk_length_schedule": [120, 160, 250, 290]}}
    assert sent[1:] == [
        {"text": "Hello there. ", "flush": True},
        {"text": "How are you? ", "flush": True},
        {"text": ""},
    ]
    assert emulator.stream_input.headers[0]["xi-api-key"] == CANARY_KEY
    assert emulator.stream_input.finished == 1


async def test_closing_early_closes_the_connection(
    served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    emulator.stream_input.first_byte_delay = 30.0
    stream = await engine(served.url).open_stream()
    await stream.send("A long answer.")
    await stream.aclose()
    await stream.aclose()  # idempotent
    for _ in range(200):
        if emulator.stream_input.closed_by_client:
            break
        await asyncio.sleep(0.01)
    assert emulator.stream_input.closed_by_client == 1


async def test_a_refused_key_is_auth_and_never_logged(
    served: ServedApp, emulator: el.ElevenLabsEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.stream_input.valid_keys = {"sk_other"}
    caplog.set_level(logging.DEBUG)
    stream = await engine(served.url).open_stream()
    with pytest.raises(ProviderError) as caught:
        await speak(stream, ["Hello."])
    assert caught.value.error_class is ErrorClass.AUTH
    assert caught.value.provider == "elevenlabs:test"
    assert CANARY_KEY not in str(caught.value) and CANARY_KEY not in caplog.text


async def test_a_quota_error_after_text_is_typed(served: ServedApp, emulator: el.ElevenLabsEmulator) -> None:
    emulator.stream_input.failure = WsFailure("This request exceeds your quota", "quota_exceeded")
    stream = await engine(served.url).open_stream()
    with pytest.raises(ProviderError) as caught:
        await speak(stream, ["Hello."])
    assert caught.value.error_class is ErrorClass.QUOTA_EXHAUSTED


async def test_no_audio_in_time_is_a_timeout(served: ServedApp, emulator: el.ElevenLabsEmulator) -> None:
    emulator.stream_input.stall = True
    stream = await engine(served.url, first_audio=0.2).open_stream()
    with pytest.raises(ProviderError) as caught:
        await speak(stream, ["Hello."])
    assert caught.value.error_class is ErrorClass.TIMEOUT


async def test_nothing_listening_is_a_network_error() -> None:
    from tests.emulators.harness import free_port

    with pytest.raises(ProviderError) as caught:
        await engine(f"http://127.0.0.1:{free_port()}").open_stream()
    assert caught.value.error_class is ErrorClass.NETWORK
    assert CANARY_KEY not in str(caught.value)


async def test_the_emulator_answers_the_sdks_own_message_sequence(
    served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    """What `elevenlabs.realtime_tts.convert_realtime` sends (it cannot connect to a plain `ws://`
    emulator itself: it forces `wss`), and every answer parses as the SDK's receive types."""
    import websockets
    from elevenlabs.types import FinalOutput

    url = (
        served.url.replace("http://", "ws://")
        + "/v1/text-to-speech/v1/stream-input?model_id=m&output_format=pcm_16000"
    )
    sdk_init = {
        "text": " ",
        "try_trigger_generation": True,
        "voice_settings": None,
        "generation_config": {"chunk_length_schedule": [50]},
    }
    answers = []
    async with websockets.connect(url, additional_headers={"xi-api-key": CANARY_KEY}) as ws:
        await ws.send(json.dumps(sdk_init))
        await ws.send(json.dumps({"text": "Hello, how are you? ", "try_trigger_generation": True}))
        await ws.send(json.dumps({"text": ""}))
        async for raw in ws:
            answers.append(json.loads(raw))
    audio, final = answers[:-1], answers[-1]
    assert audio and all(AudioOutput.model_validate(a).audio for a in audio)
    assert FinalOutput.model_validate(final).is_final is True
    assert "".join("".join(a["alignment"]["chars"]) for a in audio) == "Hello, how are you? "


async def test_words_are_generated_by_the_schedule_a_flush_or_the_end(
    served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    stream = await engine(served.url, chunk_length_schedule=(50, 60)).open_stream()
    words = "Your appointment with Doctor Patel is confirmed for Thursday at ten in the morning."
    sent = [await stream.send(word + " ") for word in words.split()]
    # The 50th character is in the 8th word ("Your appointment with Doctor Patel is confirmed
    # for " is 52): only that send starts a generation; the rest waits for 60 more.
    assert sent == [False] * 7 + [True] + [False] * 6
    assert await stream.send("See you then.", flush=True) is True
    await stream.send("Bye.")
    await stream.end()
    spoken = [s async for s in stream.audio()]
    await stream.aclose()
    ws = emulator.stream_input
    assert ws.generations == [
        ("Your appointment with Doctor Patel is confirmed for ", "schedule"),
        ("Thursday at ten in the morning. See you then. ", "flush"),
        ("Bye. ", "end"),
    ]
    assert ws.received[0]["generation_config"] == {"chunk_length_schedule": [50, 60]}
    everything = "".join(m["text"] for m in ws.received[1:])
    assert "".join(s.text for s in spoken) == everything
    assert stream.characters == len(everything.rstrip())


async def test_the_emulator_refuses_a_schedule_out_of_range(
    served: ServedApp, emulator: el.ElevenLabsEmulator
) -> None:
    import websockets

    url = (
        served.url.replace("http://", "ws://") + "/v1/text-to-speech/v1/stream-input?output_format=pcm_16000"
    )
    init = {"text": " ", "generation_config": {"chunk_length_schedule": [20]}}
    async with websockets.connect(url, additional_headers={"xi-api-key": CANARY_KEY}) as ws:
        await ws.send(json.dumps(init))
        answer = json.loads(await ws.recv())
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert "50" in answer["message"] and closed.value.rcvd is not None and closed.value.rcvd.code == 1008
