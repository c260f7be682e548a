"""Phone calls over Twilio Media Streams: the webhook's TwiML and the media stream, end to end.

A `Phone` (twilio_phone.py) plays Twilio's side over a real WebSocket. The LLM is the OpenAI emulator behind the real router;
STT and TTS are the in-memory fakes, so the bridge is what is under test.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest
import websockets
from sqlalchemy import select
from websockets.exceptions import ConnectionClosed

from billing.tables import UsageRecord
from server.realtime import twilio
from server.realtime.runtime import EnginesFactory
from server.realtime.twilio import START_MAX_BYTES, START_MAX_MESSAGES
from server.realtime.twilio_webhook import connect_twiml, webhook_key
from tests.emulators.openai import OpenAIEmulator, Scenario
from tests.server.realtime.conftest import Patchbay, fake_engines
from tests.server.realtime.twilio_phone import CALL, FRAME, Phone, basic, stream_of, ulaw
from tests.voice.fakes import FakeTTS

REPLY = "Sure thing. Your table for two is booked at seven."


@pytest.fixture
async def webhook(patchbay: Patchbay) -> AsyncIterator[Callable[..., Any]]:
    async with httpx.AsyncClient(base_url=patchbay.url) as http:

        async def answer(query: str = "", auth: str | None = None) -> httpx.Response:
            headers = {"authorization": auth or basic("twilio", patchbay.key)}
            return await http.post(f"/v1/twilio/voice{query}", data=CALL, headers=headers)

        yield answer


@pytest.fixture
async def dial(patchbay: Patchbay, webhook: Callable[..., Any]) -> AsyncIterator[Callable[..., Any]]:
    opened: list[websockets.ClientConnection] = []

    async def call(query: str = "", parameters: dict[str, str] | None = None) -> Phone:
        url, given = stream_of((await webhook(query)).text)
        ws = await websockets.connect(url, max_size=None)
        opened.append(ws)
        phone = Phone(ws)
        await phone.start(given if parameters is None else parameters)
        return phone

    yield call
    for ws in opened:
        await ws.close()


async def test_webhook_answers_twiml_with_a_token_never_the_key(
    webhook: Callable[..., Any], patchbay: Patchbay
) -> None:
    answered = await webhook("?model=default&instructions=Be%20brief%20%26%20kind&voice=en-gb")
    assert answered.status_code == 200 and answered.headers["content-type"].startswith("application/xml")
    url, parameters = stream_of(answered.text)
    assert url == patchbay.url.replace("http://", "ws://") + "/v1/twilio/media-stream"
    assert parameters["token"].startswith("ek_") and parameters["instructions"] == "Be brief & kind"
    assert parameters["voice"] == "en-gb" and patchbay.key not in answered.text

    bearer = await webhook(auth=f"Bearer {patchbay.key}")
    assert bearer.status_code == 200
    for wrong in (basic("twilio", "pb-wrong"), "Basic !!", "Digest abc", basic("", "")):
        refused = await webhook(auth=wrong)
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
        assert "Stream" not in refused.text


async def test_a_non_ascii_basic_header_is_a_401_not_a_500(webhook: Callable[..., Any]) -> None:
    refused = await webhook(auth="Basic é".encode())
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")


def test_webhook_key_and_twiml_escaping() -> None:
    assert webhook_key(basic("x", "pb-abc")) == "pb-abc"
    assert webhook_key(basic("pb-abc", "")) == "pb-abc"
    assert webhook_key("Bearer  pb-abc ") == "pb-abc"
    assert webhook_key("Basic not-base64!") is None and webhook_key("") is None
    twiml = connect_twiml("wss://h/v1/twilio/media-stream", {"instructions": '<say "hi"> & bye'})
    assert stream_of(twiml)[1] == {"instructions": '<say "hi"> & bye'}


async def test_a_call_turn_plays_audio_with_marks_and_records_usage(
    dial: Callable[..., Any], llm: OpenAIEmulator, patchbay: Patchbay
) -> None:
    llm.enqueue(Scenario(text=REPLY))
    phone: Phone = await dial("?instructions=You%20take%20restaurant%20bookings.")
    await phone.say(ulaw("Can you book a table for two?"))
    await phone.until(lambda _: phone.replied())
    assert len(phone.audio) > 400 * 8 and phone.cleared == 0
    # Each media message is followed by a mark naming the milliseconds sent so far; the reply
    # ends with its `end` mark.
    assert phone.kinds[-1] == "mark" and phone.kinds[:-1] == ["media", "mark"] * (len(phone.kinds) // 2)
    positions = [at for _, at in phone.marks]
    assert positions[:-1] == sorted(set(positions[:-1])) and positions[-1] == positions[-2] == len(
        phone.audio
    )
    sent_ms = [int(name.rpartition(":")[2]) for name, _ in phone.marks[:-1]]
    assert all(abs(ms - at / 8) <= 1 for ms, (_, at) in zip(sent_ms, phone.marks, strict=False))
    sent = llm.chat_requests[0].json["messages"]
    assert sent[0] == {"role": "system", "content": "You take restaurant bookings."}
    assert sent[-1] == {"role": "user", "content": "can you book a table for two"}

    await patchbay.services.usage.flush()
    async with patchbay.services.db.session() as s:
        rows = list(await s.scalars(select(UsageRecord).where(UsageRecord.org_id == patchbay.org_id)))
    assert sorted(r.segment for r in rows) == ["llm", "stt", "tts"]
    assert len({r.turn_id for r in rows}) == 1


@pytest.fixture
def engines() -> EnginesFactory:
    # 20 chunks of 20 ms per sentence: 400 ms of audio a sentence.
    return fake_engines(tts=FakeTTS(sample_rate=24_000, chunks=20, chunk_ms=20))


async def answered_call(dial: Callable[..., Any], llm: OpenAIEmulator) -> Phone:
    """A call whose first reply (two sentences, 400 ms each) has all arrived, none of it heard yet."""
    llm.enqueue(Scenario(text=REPLY), Scenario(text="Of course."))
    phone: Phone = await dial()
    await phone.say(ulaw("Can you book a table for two?"))
    await phone.until(lambda _: phone.replied())
    return phone


async def test_barge_in_clears_twilio_and_keeps_only_what_was_heard(
    dial: Callable[..., Any], llm: OpenAIEmulator
) -> None:
    phone = await answered_call(dial, llm)
    # The caller heard the first sentence (400 ms) and the start of the second: echo the marks
    # up to the first one past 400 ms.
    for name, at in phone.marks:
        await phone.played(name)
        if at >= 400 * 8:
            break

    await phone.say(ulaw("No wait, make it three."))
    await phone.until(lambda message: message["event"] == "clear")
    await phone.until(lambda _: phone.replied(2), within=15)
    history = llm.chat_requests[1].json["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "user"]
    heard = history[1]["content"]
    # The first sentence stays, the unheard rest of the second left the history.
    assert heard.startswith("Sure thing.") and REPLY.startswith(heard) and "seven" not in heard


async def test_every_heard_reply_stays_whole(dial: Callable[..., Any], llm: OpenAIEmulator) -> None:
    phone = await answered_call(dial, llm)
    for name, _ in phone.marks:
        await phone.played(name)
    await phone.say(ulaw("Thank you, goodbye."))
    await phone.until(lambda _: phone.replied(2), within=15)
    assert phone.cleared == 0
    assert llm.chat_requests[1].json["messages"][1]["content"] == REPLY


@pytest.mark.parametrize(
    ("parameters", "fmt", "code"),
    [
        ({}, ("audio/x-mulaw", 8000), 1008),
        ({"token": "ek_forged.signature"}, ("audio/x-mulaw", 8000), 1008),
        (None, ("audio/l16", 16000), 1003),
    ],
    ids=["no-token", "forged-token", "wrong-format"],
)
async def test_a_stream_without_a_valid_start_is_closed(
    patchbay: Patchbay,
    webhook: Callable[..., Any],
    parameters: dict[str, str] | None,
    fmt: tuple[str, int],
    code: int,
) -> None:
    url, given = stream_of((await webhook()).text)
    async with websockets.connect(url) as ws:
        phone = Phone(ws)
        await phone.say(ulaw("Hello?")[: FRAME * 5])  # media before start is not served
        await phone.start(given if parameters is None else parameters, encoding=fmt[0], rate=fmt[1])
        with pytest.raises(ConnectionClosed) as closed:
            await phone.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code
    assert patchbay.runtime.sessions.total == 0


@pytest.mark.parametrize(
    "junk",
    [["{}"] * (START_MAX_MESSAGES + 1), ["x" * 40_000] * 2, [b"\0" * (START_MAX_BYTES + 1)]],
    ids=["many-messages", "many-bytes", "one-big-binary-frame"],
)
async def test_junk_before_start_closes_the_stream(
    patchbay: Patchbay, webhook: Callable[..., Any], junk: list[str | bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The close must come from the cap, not from the wait for a start running out.
    monkeypatch.setattr(twilio, "START_TIMEOUT_SECONDS", 3600.0)
    url, _ = stream_of((await webhook()).text)
    async with websockets.connect(url, max_size=None) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(30):  # a hang guard only
                for message in junk:
                    await ws.send(message)
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    async with httpx.AsyncClient(base_url=patchbay.url) as http:
        assert (await http.get("/healthz")).status_code == 200
    assert patchbay.runtime.sessions.total == 0


async def test_garbage_is_skipped_and_the_call_goes_on(dial: Callable[..., Any], llm: OpenAIEmulator) -> None:
    llm.enqueue(Scenario(text=REPLY))
    phone: Phone = await dial()
    for garbage in (
        "{not json",
        "[1, 2]",
        orjson.dumps({"event": "hangup-now"}).decode(),
        orjson.dumps({"event": "media", "media": {"payload": "%%%not base64"}}).decode(),
        orjson.dumps({"event": "media", "media": {}}).decode(),
        orjson.dumps({"event": "mark", "mark": {"name": "not-ours"}}).decode(),
        orjson.dumps({"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": "5"}}).decode(),
    ):
        await phone.send(garbage)
    await phone.say(ulaw("Can you book a table for two?"))
    await phone.until(lambda message: message["event"] == "media")
    assert len(llm.chat_requests) == 1


async def test_a_stop_message_ends_the_call(
    dial: Callable[..., Any], llm: OpenAIEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="patchbay.twilio")
    llm.enqueue(Scenario(text=REPLY))
    phone: Phone = await dial()
    await phone.say(ulaw("Can you book a table for two?"))
    await phone.until(lambda _: phone.replied())
    await phone.send("{not json")
    await phone.send({"event": "stop", "sequenceNumber": "99", "streamSid": phone.sid, "stop": {}})
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await phone.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    ended = [r for r in caplog.records if r.getMessage() == "twilio call ended"]
    assert [getattr(r, "fields", {}).get("skipped") for r in ended] == [{"invalid_json": 1}]
