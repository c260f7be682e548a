"""A phone call outlives its worker's drain: at the call's first quiet moment the stream closes,
Twilio follows the TwiML's redirect, and a new stream goes on with the conversation so far. A
stream whose connection drops without Twilio's `stop` is handed over the same way, at once.

The server runs `patchbay serve`'s draining WebSocket protocol; a drain is started for the
media stream's socket alone (`DrainingProtocol.shutdown`, what uvicorn calls on SIGTERM), so the
same server, still listening, answers the redirect as another worker would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
import websockets
from sqlalchemy import select
from twilio.twiml.voice_response import Connect, VoiceResponse
from websockets.exceptions import ConnectionClosed

from foundation.db import utcnow
from foundation.metrics import TWILIO_STREAMS_DROPPED, VOICE_DRAIN_CLOSES
from server.accounts import Principal
from server.realtime import handover, twilio
from server.realtime.twilio import STREAM_PATH
from server.tables import VoiceHandover
from server.ws_drain import DrainingProtocol, websocket_protocol
from tests.emulators.openai import OpenAIEmulator, Scenario
from tests.server.realtime.conftest import Patchbay, watch_close
from tests.server.realtime.test_twilio import REPLY
from tests.server.realtime.twilio_phone import CALL, Phone, basic, redirect_of, stream_of, ulaw
from tests.voice.test_session import make_session


@pytest.fixture
def ws_protocol(request: pytest.FixtureRequest) -> Any:
    """`patchbay serve`'s draining protocol; a test may set its drain's seconds (indirect)."""
    return websocket_protocol(drain_seconds=getattr(request, "param", 30.0))


@pytest.fixture
async def http(patchbay: Patchbay) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=patchbay.url) as client:
        yield client


def drain_streams(patchbay: Patchbay) -> int:
    """Start the drain of every open media stream, as a SIGTERM does; how many there were."""
    streams = [
        protocol
        for protocol in patchbay.server.server_state.connections
        if isinstance(protocol, DrainingProtocol)
        and getattr(protocol, "scope", {}).get("path") == STREAM_PATH
    ]
    for protocol in streams:
        protocol.shutdown()
    return len(streams)


async def closed_code(phone: Phone) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await phone.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


@contextlib.contextmanager
def logged(message: str) -> Iterator[asyncio.Event]:
    """An event set when the Twilio logger writes `message` (the handler of a stream is done)."""
    seen = asyncio.Event()

    class Tell(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage() == message:
                seen.set()

    logger = logging.getLogger("patchbay.twilio")
    handler, level = Tell(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@dataclass
class Call:
    phone: Phone
    given: dict[str, str]
    """The stream parameters of the webhook's TwiML."""
    redirect: str
    """The TwiML's `<Redirect>` URL."""


async def call_after_a_turn(
    patchbay: Patchbay,
    http: httpx.AsyncClient,
    parameters: Callable[[dict[str, str]], dict[str, str]] = lambda given: given,
) -> Call:
    """A call the webhook answered whose stream (started with `parameters` of the TwiML's) has had
    one turn: the reply's audio arrived, its marks not yet echoed."""
    answered = await http.post(
        "/v1/twilio/voice", data=CALL, headers={"authorization": basic("twilio", patchbay.key)}
    )
    url, given = stream_of(answered.text)
    phone = Phone(await websockets.connect(url))
    await phone.start(parameters(given))
    await phone.say(ulaw("Can you book a table for two?"))
    await phone.until(lambda _: phone.replied())
    return Call(phone, given, redirect_of(answered.text))


async def goes_on_after_the_redirect(http: httpx.AsyncClient, call: Call, llm: OpenAIEmulator) -> Phone:
    """Twilio follows the call's redirect: a new stream resumes the call's handover, the caller
    speaks again, and the reply's LLM request carries the first turn. Returns the new stream."""
    moved = await http.post(call.redirect, data=CALL)
    url, again = stream_of(moved.text)
    assert again["resume"] == call.given["handover"]
    phone = Phone(await websockets.connect(url), sid="MZ0456")
    await phone.start(again)
    await phone.say(ulaw("Make it three."))
    await phone.until(lambda _: phone.replied())
    assert llm.chat_requests[-1].json["messages"][:2] == [
        {"role": "user", "content": "can you book a table for two"},
        {"role": "assistant", "content": REPLY},
    ]
    return phone


async def handovers(patchbay: Patchbay) -> dict[str, int]:
    """The handover rows: each id with how many items its conversation holds."""
    async with patchbay.services.db.session() as s:
        rows = (await s.execute(select(VoiceHandover.id, VoiceHandover.items))).all()
    return {row_id: len(items) for row_id, items in rows}


async def handovers_become(patchbay: Patchbay, expected: dict[str, int]) -> None:
    """Wait until the handover rows are `expected`: a call's checkpoint is written beside it,
    after its replies, so a test reads the rows until they hold what it expects."""
    for _ in range(500):  # reads of the table, bounded (10 s); each ends the wait once it holds
        if (rows := await handovers(patchbay)) == expected:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the handover rows are {rows}, never {expected}")


async def test_a_call_goes_on_in_a_new_stream_after_its_worker_drains(
    patchbay: Patchbay, http: httpx.AsyncClient, llm: OpenAIEmulator
) -> None:
    llm.enqueue(Scenario(text=REPLY), Scenario(text="Of course, three it is."))
    answered = await http.post(
        "/v1/twilio/voice?instructions=You%20take%20bookings.&voice=en-gb",
        data=CALL,
        headers={"authorization": basic("twilio", patchbay.key)},
    )
    url, given = stream_of(answered.text)
    redirect = redirect_of(answered.text)
    assert redirect == f"{patchbay.url}/v1/twilio/voice?handover={given['handover']}"
    assert "resume" not in given and patchbay.key not in answered.text

    phone = Phone(await websockets.connect(url))
    await phone.start(given)
    await phone.say(ulaw("Can you book a table for two?"))
    await phone.until(lambda _: phone.replied())
    for name, _ in phone.marks:
        await phone.played(name)
    quiet_before = VOICE_DRAIN_CLOSES.labels("quiet")._value.get()

    assert drain_streams(patchbay) == 1
    assert await closed_code(phone) == 1000
    assert VOICE_DRAIN_CLOSES.labels("quiet")._value.get() == quiet_before + 1
    # The call's checkpoint row became its handover: the caller's words and the reply.
    assert await handovers(patchbay) == {given["handover"]: 2}

    # Twilio runs the rest of the TwiML: the redirect (no key: the handover is the credential).
    moved = await http.post(redirect, data=CALL)
    assert moved.status_code == 200
    url, again = stream_of(moved.text)
    assert again["resume"] == given["handover"] and again["handover"] != given["handover"]
    assert again["token"].startswith("ek_")
    assert (again["instructions"], again["voice"]) == ("You take bookings.", "en-gb")
    assert redirect_of(moved.text).endswith(f"?handover={again['handover']}")

    phone = Phone(await websockets.connect(url), sid="MZ0456")
    await phone.start(again)
    await phone.say(ulaw("Make it three."))
    await phone.until(lambda _: phone.replied())
    # The new stream's session holds the conversation so far, the caller's words and the reply.
    assert llm.chat_requests[1].json["messages"] == [
        {"role": "system", "content": "You take bookings."},
        {"role": "user", "content": "can you book a table for two"},
        {"role": "assistant", "content": REPLY},
        {"role": "user", "content": "can you book a table for two"},
    ]
    # The handover was taken by the new stream (used once); the row left is the new stream's
    # own checkpoint: both turns.
    await handovers_become(patchbay, {again["handover"]: 4})
    assert (await http.post(redirect, data=CALL)).text.endswith("<Response><Hangup/></Response>")
    await phone.hang_up()


async def test_a_stream_that_drops_without_a_stop_goes_on_after_the_redirect(
    patchbay: Patchbay, http: httpx.AsyncClient, llm: OpenAIEmulator
) -> None:
    llm.enqueue(Scenario(text=REPLY), Scenario(text="Of course, three it is."))
    call = await call_after_a_turn(patchbay, http)
    phone = call.phone

    dropped = TWILIO_STREAMS_DROPPED.labels("handed_over")._value.get()
    handed = "twilio media stream dropped without a stop: handed over for the call's redirect"
    with logged(handed) as written:
        phone.ws.transport.abort()  # the connection drops: no `stop`, not even a close frame
        async with asyncio.timeout(10):
            await written.wait()
    assert await handovers(patchbay) == {call.given["handover"]: 2}
    phone = await goes_on_after_the_redirect(http, call, llm)
    assert TWILIO_STREAMS_DROPPED.labels("handed_over")._value.get() == dropped + 1
    await phone.hang_up()


async def expires_in(patchbay: Patchbay, handover_id: str) -> float:
    """Seconds until the row of `handover_id` expires."""
    async with patchbay.services.db.session() as s:
        expires_at = await s.scalar(select(VoiceHandover.expires_at).where(VoiceHandover.id == handover_id))
    assert expires_at is not None
    return (expires_at - utcnow()).total_seconds()


@pytest.mark.parametrize("checkpoints", [True, False], ids=["checkpoints", "no_checkpoints"])
async def test_a_call_keeps_its_conversation_in_a_checkpoint_after_each_reply(
    patchbay: Patchbay,
    http: httpx.AsyncClient,
    llm: OpenAIEmulator,
    monkeypatch: pytest.MonkeyPatch,
    checkpoints: bool,
) -> None:
    """What a worker that dies outright leaves for the call's redirect: its row with the
    conversation up to the reply, living longer than the stream can. With
    `PATCHBAY_TWILIO_CALL_CHECKPOINTS=false` (no writer) a call has no row until a drop or a
    drain writes its final handover."""
    runtime = patchbay.services.voice
    if not checkpoints:
        monkeypatch.setattr(runtime, "checkpoints", None)
    llm.enqueue(Scenario(text=REPLY))
    call = await call_after_a_turn(patchbay, http)
    handover_id = call.given["handover"]
    if checkpoints:
        await handovers_become(patchbay, {handover_id: 2})
        assert await expires_in(patchbay, handover_id) > runtime.max_session_seconds
    else:
        assert await handovers(patchbay) == {}
    handed = "twilio media stream dropped without a stop: handed over for the call's redirect"
    with logged(handed) as written:
        call.phone.ws.transport.abort()
        async with asyncio.timeout(10):
            await written.wait()
    # The final handover replaced the checkpoint: the same row, for the redirect alone.
    assert await handovers(patchbay) == {handover_id: 2}
    assert await expires_in(patchbay, handover_id) <= handover.HANDOVER_SECONDS


async def test_a_barge_in_rewrites_the_checkpoint_with_the_reply_as_heard(
    patchbay: Patchbay, http: httpx.AsyncClient, llm: OpenAIEmulator
) -> None:
    """A worker dying between a barge-in and the next reply leaves what the caller heard: the
    cut reply is checkpointed at once, not at the next reply (which here never comes)."""
    llm.enqueue(Scenario(text=REPLY), Scenario(stall_after=0))
    call = await call_after_a_turn(patchbay, http)  # none of the reply's marks echoed: unheard
    phone = call.phone
    await handovers_become(patchbay, {call.given["handover"]: 2})
    await phone.say(ulaw("No wait, make it three."))
    await phone.until(lambda message: message["event"] == "clear")
    # The reply, cut before the caller heard any of it, left the conversation: a worker dying
    # now would hand on the caller's words alone (the second utterance too, once committed).
    for _ in range(500):  # reads of the table, bounded (10 s); each ends the wait once it holds
        async with patchbay.services.db.session() as s:
            [items] = list(await s.scalars(select(VoiceHandover.items)))
        if all(item["role"] == "user" for item in items):
            break
        await asyncio.sleep(0.02)
    assert items and all(item["role"] == "user" for item in items), items
    await phone.hang_up()


async def test_a_dropped_stream_whose_twiml_names_no_handover_ends_its_call(
    patchbay: Patchbay, http: httpx.AsyncClient, llm: OpenAIEmulator
) -> None:
    """TwiML an application writes itself, without `handover` and the `<Redirect>`."""
    llm.enqueue(Scenario(text=REPLY))
    call = await call_after_a_turn(
        patchbay, http, lambda given: {n: v for n, v in given.items() if n != "handover"}
    )
    phone = call.phone
    ended_before = TWILIO_STREAMS_DROPPED.labels("ended")._value.get()
    with logged("twilio call ended") as ended:
        phone.ws.transport.abort()
        async with asyncio.timeout(10):
            await ended.wait()
    assert TWILIO_STREAMS_DROPPED.labels("ended")._value.get() == ended_before + 1
    assert await handovers(patchbay) == {}


async def test_a_stream_twilio_stops_leaves_no_handover(
    patchbay: Patchbay, http: httpx.AsyncClient, llm: OpenAIEmulator
) -> None:
    llm.enqueue(Scenario(text=REPLY))
    call = await call_after_a_turn(patchbay, http)
    phone = call.phone
    await handovers_become(patchbay, {call.given["handover"]: 2})  # the call's checkpoint
    # The caller hangs up: Twilio says `stop` and runs no more TwiML (a redirect would hang up).
    stop = {"accountSid": "AC0123", "callSid": "CA0123"}
    await phone.send({"event": "stop", "sequenceNumber": "99", "streamSid": phone.sid, "stop": stop})
    assert await closed_code(phone) == 1000
    assert await handovers(patchbay) == {}
    redirected = await http.post(call.redirect, data=CALL)
    assert redirected.text.endswith("<Response><Hangup/></Response>")


async def test_a_caller_who_stops_and_closes_at_once_ends_the_call_cleanly(
    patchbay: Patchbay, http: httpx.AsyncClient, llm: OpenAIEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twilio may close the socket right after `stop`, before the server's own close: the call
    still ends in order (its checkpoint deleted), and the server's close raises nothing."""
    closing = watch_close(monkeypatch, twilio)
    llm.enqueue(Scenario(text=REPLY))
    call = await call_after_a_turn(patchbay, http)
    phone = call.phone
    await handovers_become(patchbay, {call.given["handover"]: 2})
    stop = {"accountSid": "AC0123", "callSid": "CA0123"}
    await phone.send({"event": "stop", "sequenceNumber": "99", "streamSid": phone.sid, "stop": stop})
    phone.ws.transport.close()  # gone before the server's close frame, without one of its own
    async with asyncio.timeout(10):
        assert await closing is None
    assert await handovers(patchbay) == {}


@pytest.mark.parametrize("ws_protocol", [0.5], indirect=True)
async def test_a_call_never_quiet_is_cut_at_the_drain_deadline_not_handed_over(
    patchbay: Patchbay, http: httpx.AsyncClient, llm: OpenAIEmulator
) -> None:
    llm.enqueue(Scenario(text=REPLY))
    call = await call_after_a_turn(patchbay, http)  # its marks never echoed: not played out, never quiet
    phone = call.phone
    with logged("twilio call ended") as ended:
        assert drain_streams(patchbay) == 1
        assert await closed_code(phone) == 1012  # closed by the drain's deadline, not dropped
        async with asyncio.timeout(10):
            await ended.wait()
    assert await handovers(patchbay) == {}
    redirected = await http.post(call.redirect, data=CALL)
    assert redirected.text.endswith("<Response><Hangup/></Response>")


async def test_a_handover_that_cannot_be_written_ends_the_call_with_its_stream(
    patchbay: Patchbay,
    http: httpx.AsyncClient,
    llm: OpenAIEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def database_down(*_: object) -> None:
        raise ConnectionRefusedError("the database is down")

    monkeypatch.setattr(handover, "save", database_down)
    monkeypatch.setattr(handover, "save_checkpoints", database_down)
    caplog.set_level(logging.INFO, logger="patchbay.twilio")
    llm.enqueue(Scenario(text=REPLY))
    call = await call_after_a_turn(patchbay, http)
    phone = call.phone
    checkpoints = patchbay.services.voice.checkpoints
    assert checkpoints is not None and await checkpoints.flush() == 0
    assert drain_streams(patchbay) == 1
    assert await closed_code(phone) == 1000
    assert "twilio call checkpoints not written: calls on a worker that dies now end" in caplog.messages
    assert "twilio call handover not written: the call ends with this stream" in caplog.messages
    assert "twilio call handed over at a quiet moment of the drain" not in caplog.messages
    assert "twilio call ended" in caplog.messages
    # Still down when Twilio redirects: the call ends quietly, not with Twilio's error message.
    monkeypatch.setattr(handover, "find", database_down)
    redirected = await http.post(call.redirect, data=CALL)
    assert redirected.status_code == 200 and redirected.text.endswith("<Hangup/></Response>")
    assert "twilio call ends: the database is unavailable to find its handover" in caplog.messages


async def test_a_handover_that_cannot_be_written_leaves_the_call_its_checkpoint(
    patchbay: Patchbay,
    http: httpx.AsyncClient,
    llm: OpenAIEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The final handover fails but the checkpoint of the last reply is there: the redirect
    resumes the call from it."""
    caplog.set_level(logging.INFO, logger="patchbay.twilio")
    llm.enqueue(Scenario(text=REPLY), Scenario(text="Of course, three it is."))
    call = await call_after_a_turn(patchbay, http)
    await handovers_become(patchbay, {call.given["handover"]: 2})

    async def database_down(*_: object) -> None:
        raise ConnectionRefusedError("the database is down")

    monkeypatch.setattr(handover, "save", database_down)
    assert drain_streams(patchbay) == 1
    assert await closed_code(call.phone) == 1000
    assert (
        "twilio call handover not written: the redirect resumes the call from its last checkpoint"
        in caplog.messages
    )
    phone = await goes_on_after_the_redirect(http, call, llm)
    await phone.hang_up()


async def test_a_redirect_without_its_handover_ends_the_call(
    patchbay: Patchbay, http: httpx.AsyncClient
) -> None:
    principal = Principal(key_id="key_unused", org_id=patchbay.org_id, agent_id=None)
    now = utcnow()
    db = patchbay.services.db
    lifetime = timedelta(seconds=handover.HANDOVER_SECONDS)
    await handover.save(db, handover.Handover("fresh", "CA0123", principal, None, {}, []), now)
    for query, form in (
        ("?handover=unknown", CALL),  # the stream ended for another reason: nothing written
        ("?handover=fresh", {**CALL, "CallSid": "CA9999"}),  # another call's
        ("?handover=fresh", {}),  # no call at all
    ):
        answered = await http.post(f"/v1/twilio/voice{query}", data=form)
        assert answered.status_code == 200, query
        assert answered.text.endswith("<Response><Hangup/></Response>"), query
    # Past its lifetime a handover is not found, and the next one written deletes it.
    assert await handover.find(db, "fresh", "CA0123", now + lifetime) is not None
    assert await handover.find(db, "fresh", "CA0123", now + lifetime + timedelta(seconds=1)) is None
    later = now + lifetime + timedelta(seconds=1)
    await handover.save(db, handover.Handover("later", "CA0456", principal, None, {}, []), later)
    async with db.session() as s:
        assert list(await s.scalars(select(VoiceHandover.id))) == ["later"]


async def test_a_stream_that_resumes_another_keys_handover_starts_afresh(
    patchbay: Patchbay, http: httpx.AsyncClient, llm: OpenAIEmulator
) -> None:
    other = Principal(key_id="key_other", org_id=patchbay.org_id, agent_id=None)
    earlier = [{"kind": "text", "role": "user", "text": "my card number is 4242"}]
    await handover.save(
        patchbay.services.db, handover.Handover("theirs", "CA0123", other, None, {}, earlier), utcnow()
    )
    llm.enqueue(Scenario(text=REPLY))
    call = await call_after_a_turn(patchbay, http, lambda given: {**given, "resume": "theirs"})
    phone = call.phone
    assert llm.chat_requests[0].json["messages"] == [
        {"role": "user", "content": "can you book a table for two"}
    ]
    await phone.hang_up()


def test_a_conversation_with_function_calls_is_carried_over_in_order() -> None:
    before = make_session()
    before.add_text("system", "Be brief.")
    before.add_text("user", "What is the time in Paris?")
    before.add_function_call("clock", '{"city": "Paris"}', call_id="call_1")
    before.add_function_output("call_1", '{"time": "10:04"}')
    before.add_text("assistant", "It is 10:04 in Paris.")
    before.add_text("user", "")  # nothing said: not carried
    carried = orjson.loads(orjson.dumps(handover.conversation_of(before)))  # as the JSON column holds it

    after = make_session()
    # An output whose call is not in the history is refused by the session: left out, the rest kept.
    orphan = {"kind": "function_call_output", "role": "tool", "text": "{}", "call_id": "call_gone"}
    assert handover.restore(after, [orphan, *carried]) == 1
    assert [(i.kind, i.role, i.text, i.call_id, i.name) for i in after.conversation.items] == [
        ("text", "system", "Be brief.", None, None),
        ("text", "user", "What is the time in Paris?", None, None),
        ("function_call", "assistant", '{"city": "Paris"}', "call_1", "clock"),
        ("function_call_output", "tool", '{"time": "10:04"}', "call_1", None),
        ("text", "assistant", "It is 10:04 in Paris.", None, None),
    ]


def _tree(xml: str) -> object:
    """An XML document as nested (tag, attributes, text, children), to compare two spellings."""

    def node(element: ET.Element) -> object:
        return (element.tag, element.attrib, (element.text or "").strip(), [node(c) for c in element])

    return node(ET.fromstring(xml))


async def test_the_twiml_is_what_the_official_twilio_library_writes(
    patchbay: Patchbay, http: httpx.AsyncClient
) -> None:
    answered = await http.post(
        "/v1/twilio/voice?voice=en-gb", data=CALL, headers={"authorization": basic("twilio", patchbay.key)}
    )
    url, given = stream_of(answered.text)
    expected = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=url)
    for name, value in given.items():
        stream.parameter(name=name, value=value)
    expected.append(connect)
    expected.redirect(redirect_of(answered.text), method="POST")
    assert _tree(answered.text) == _tree(str(expected))

    hangup = VoiceResponse()
    hangup.hangup()
    ended = await http.post("/v1/twilio/voice?handover=unknown", data=CALL)
    assert _tree(ended.text) == _tree(str(hangup))
