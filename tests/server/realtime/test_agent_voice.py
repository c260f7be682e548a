"""An agent's voice settings become its sessions' defaults, over the realtime WebSocket and a
Twilio media stream; a client's `session.update` (or a call's parameters) still wins."""

from __future__ import annotations

import base64
from typing import Any, get_args

import httpx
import pytest
import websockets

from providers.speech.base import STTEngine, TTSEngine
from routing.voice_settings import OUTPUT_FORMATS
from server import accounts
from server.realtime.runtime import EnginesFactory
from server.realtime.wire import BetaFormat
from tests.emulators.openai import OpenAIEmulator, Scenario
from tests.server.realtime.conftest import Client, Patchbay
from tests.server.realtime.test_endpoint import speech_24k, stream_audio
from tests.server.realtime.test_twilio import Phone, basic, stream_of, ulaw
from tests.voice.fakes import FakeSTT, FakeTTS

REPLY = "Hello there."
ADA = {"voice": "nova", "instructions": "You are Ada, a booking assistant.", "language": "en-GB"}


@pytest.fixture
def tts() -> FakeTTS:
    return FakeTTS(sample_rate=24_000, chunks=4, chunk_ms=40)


@pytest.fixture
def stt() -> FakeSTT:
    return FakeSTT(text="can you book a table for two")


@pytest.fixture
def engines(stt: FakeSTT, tts: FakeTTS) -> EnginesFactory:
    def build(principal: object) -> tuple[STTEngine, TTSEngine]:
        return stt, tts

    return build


async def agent_key(patchbay: Patchbay, name: str, voice_settings: dict[str, str | None]) -> str:
    """A new agent with these voice settings, and an API key bound to it."""
    services = patchbay.services
    async with services.db.session() as s:
        await services.agents().create(s, patchbay.org_id, name, voice_settings=voice_settings)
        key = await accounts.create_api_key(s, patchbay.org_id, agent=name, name=name)
    services.config_changed(patchbay.org_id)
    return key.key


def test_the_agent_output_formats_are_the_wire_formats() -> None:
    assert set(OUTPUT_FORMATS) == set(get_args(BetaFormat))


async def test_an_agent_key_starts_with_the_agent_voice_settings(
    connect: Any, llm: OpenAIEmulator, patchbay: Patchbay, stt: FakeSTT, tts: FakeTTS
) -> None:
    key = await agent_key(patchbay, "ada", {**ADA, "output_format": "g711_ulaw"})
    llm.enqueue(Scenario(text=REPLY))
    client: Client = await connect(key=key)
    session = (await client.until("session.created"))[-1]["session"]
    assert session["instructions"] == ADA["instructions"]
    assert session["audio"]["output"] == {"format": {"type": "audio/pcmu"}, "voice": "nova"}
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}

    await stream_audio(client, speech_24k())
    events = await client.until("response.done")
    audio = b"".join(
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
    )
    assert stt.calls and all(call.language == "en-GB" for call in stt.calls)
    assert tts.state.calls and all(call.voice == "nova" for call in tts.state.calls)
    assert llm.chat_requests[0].json["messages"][0] == {"role": "system", "content": ADA["instructions"]}
    # G.711 at 8 kHz: one byte a sample, a third of the fake's 24 kHz samples.
    assert len(audio) == len(tts.state.calls) * len(tts.audio()) // 2 // 3


async def test_a_session_update_overrides_the_agent_settings(
    connect: Any, llm: OpenAIEmulator, patchbay: Patchbay, tts: FakeTTS
) -> None:
    key = await agent_key(patchbay, "ada", {**ADA, "output_format": "g711_alaw"})
    llm.enqueue(Scenario(text=REPLY))
    client: Client = await connect(key=key)
    await client.until("session.created")
    await client.send(
        "session.update",
        session={
            "type": "realtime",
            "instructions": "You are Bob.",
            "audio": {
                "input": {"turn_detection": None},
                "output": {"voice": "echo", "format": {"type": "audio/pcm"}},
            },
        },
    )
    session = (await client.until("session.updated"))[-1]["session"]
    assert session["instructions"] == "You are Bob."
    assert session["audio"]["output"] == {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "echo"}
    await client.send(
        "conversation.item.create",
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
    )
    await client.send("response.create")
    await client.until("response.done")
    assert [call.voice for call in tts.state.calls] == ["echo"]
    assert llm.chat_requests[0].json["messages"][0] == {"role": "system", "content": "You are Bob."}


async def test_beta_clients_see_the_agent_format_by_its_beta_name(connect: Any, patchbay: Patchbay) -> None:
    key = await agent_key(patchbay, "ada", {"output_format": "g711_ulaw"})
    client: Client = await connect(key=key, headers={"OpenAI-Beta": "realtime=v1"})
    session = (await client.until("session.created"))[-1]["session"]
    assert session["output_audio_format"] == "g711_ulaw" and session["input_audio_format"] == "pcm16"
    assert session["voice"] == "default" and session["instructions"] == ""


@pytest.mark.parametrize("bound", [False, True])
async def test_without_agent_settings_the_server_defaults_apply(
    connect: Any, llm: OpenAIEmulator, patchbay: Patchbay, tts: FakeTTS, stt: FakeSTT, bound: bool
) -> None:
    key = await agent_key(patchbay, "plain", {}) if bound else patchbay.key
    llm.enqueue(Scenario(text=REPLY))
    client: Client = await connect(key=key)
    session = (await client.until("session.created"))[-1]["session"]
    assert session["instructions"] == ""
    assert session["audio"]["output"] == {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "default"}
    await stream_audio(client, speech_24k())
    await client.until("response.done")
    assert [call.language for call in stt.calls] == [None]
    assert tts.state.calls and all(call.voice is None for call in tts.state.calls)
    assert llm.chat_requests[0].json["messages"][0]["role"] == "user"


async def test_changed_settings_reach_the_next_session(connect: Any, patchbay: Patchbay) -> None:
    key = await agent_key(patchbay, "ada", ADA)
    first: Client = await connect(key=key)
    assert (await first.until("session.created"))[-1]["session"]["audio"]["output"]["voice"] == "nova"
    services = patchbay.services
    async with services.db.session() as s:
        await services.agents().update(
            s, patchbay.org_id, "ada", voice_settings={"voice": "", "instructions": "Hi."}
        )
    services.config_changed(patchbay.org_id)
    second: Client = await connect(key=key)
    session = (await second.until("session.created"))[-1]["session"]
    assert session["audio"]["output"]["voice"] == "default" and session["instructions"] == "Hi."


async def test_a_browser_token_describes_the_agent_session(patchbay: Patchbay) -> None:
    key = await agent_key(patchbay, "ada", ADA)
    async with httpx.AsyncClient(base_url=patchbay.url) as http:
        minted = await http.post("/v1/realtime/client_secrets", headers={"authorization": f"Bearer {key}"})
    session = minted.json()["session"]
    assert session["instructions"] == ADA["instructions"] and session["audio"]["output"]["voice"] == "nova"


async def call_with(patchbay: Patchbay, key: str, parameters: dict[str, str] | None = None) -> Phone:
    async with httpx.AsyncClient(base_url=patchbay.url) as http:
        answered = await http.post(
            "/v1/twilio/voice", data={"CallSid": "CA0123"}, headers={"authorization": basic("twilio", key)}
        )
    url, given = stream_of(answered.text)
    phone = Phone(await websockets.connect(url, max_size=None))
    await phone.start({**given, **(parameters or {})})
    return phone


@pytest.mark.parametrize(
    ("parameters", "voice", "instructions"),
    [({}, "nova", ADA["instructions"]), ({"voice": "echo", "instructions": "Be Bob."}, "echo", "Be Bob.")],
)
async def test_a_phone_call_on_an_agent_key(
    patchbay: Patchbay,
    llm: OpenAIEmulator,
    tts: FakeTTS,
    stt: FakeSTT,
    parameters: dict[str, str],
    voice: str,
    instructions: str,
) -> None:
    # The agent's PCM preference cannot apply to a phone line: the call stays G.711 µ-law.
    key = await agent_key(patchbay, "ada", {**ADA, "output_format": "pcm16"})
    llm.enqueue(Scenario(text=REPLY))
    phone = await call_with(patchbay, key, parameters)
    try:
        await phone.say(ulaw("Can you book a table for two?"))
        await phone.until(lambda _: phone.replied())
    finally:
        await phone.hang_up()
    assert tts.state.calls and all(call.voice == voice for call in tts.state.calls)
    assert [call.language for call in stt.calls] == ["en-GB"]
    assert llm.chat_requests[0].json["messages"][0] == {"role": "system", "content": instructions}
    assert len(phone.audio) == len(tts.state.calls) * len(tts.audio()) // 2 // 3
