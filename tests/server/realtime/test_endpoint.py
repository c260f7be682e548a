"""`/v1/realtime` over a real WebSocket: turns, barge-in, names, auth, limits, usage records.

The LLM is the OpenAI emulator behind the real router; STT and TTS are in-memory fakes here
(the internal engines run in test_acceptance.py), so the transport is what is under test.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import replace
from typing import Any

import httpx
import pytest
import websockets
from redis.asyncio import Redis
from sqlalchemy import select

from billing.tables import UsageRecord
from server import accounts
from server.realtime import endpoint
from server.realtime.endpoint import REPLACED_REASON
from server.realtime.runtime import EnginesFactory
from server.realtime.session_limit import InProcessSessionLimiter, RedisSessionLimiter
from server.v1.ratelimit import InProcessRateLimiter, RateLimit
from tests.emulators.openai import OpenAIEmulator, Scenario
from tests.server.realtime.conftest import Client, Patchbay, fake_engines, watch_close
from tests.server.realtime.sdk import validated
from tests.voice.fakes import FakeTTS
from tests.voice.speech import silence, speak
from voice.audio import resample

REPLY = "Sure thing. Your table for two is booked at seven."

SDK_GAPS = frozenset({"$.session.id", "$.session.object"})
"""Fields we send on purpose that the SDK's models do not have: the GA session's id and object,
as OpenAI's own server sends them."""


def sdk_view(event: dict[str, Any]) -> dict[str, Any]:
    """The event as the SDK's models can check it: `response.done` carries our turn timings as
    nested `response.metadata` (docs/voice.md, Latency), which the SDK types as str -> str and
    parses without validating, so it is left out of the check."""
    if event["type"] != "response.done":
        return event
    return {**event, "response": {**event["response"], "metadata": None}}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def speech_24k(text: str = "Can you book a table for two?", trailing_ms: int = 800) -> bytes:
    return resample(silence(300) + speak(text) + silence(trailing_ms), 16_000, 24_000)


async def stream_audio(client: Client, pcm: bytes, frame_ms: int = 20) -> None:
    step = 48 * frame_ms  # bytes of 24 kHz PCM16 per frame
    for offset in range(0, len(pcm), step):
        await client.send("input_audio_buffer.append", audio=b64(pcm[offset : offset + step]))


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


async def test_session_created_has_the_ga_shape(connect: Any) -> None:
    client: Client = await connect()
    created = await client.recv()
    assert created["type"] == "session.created"
    session = created["session"]
    assert session["type"] == "realtime"
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    detection = session["audio"]["input"]["turn_detection"]
    assert detection["type"] == "server_vad" and detection["silence_duration_ms"] == 500
    assert detection["create_response"] is True and detection["interrupt_response"] is True


async def test_a_client_gone_without_a_close_frame_ends_its_session_without_an_error(
    connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dropped connection (no close frame, the socket just closed): the server ends the
    session and its own close finds the socket gone, which is no error."""
    closing = watch_close(monkeypatch, endpoint)
    client: Client = await connect()
    assert (await client.recv())["type"] == "session.created"
    client.ws.transport.close()
    async with asyncio.timeout(10):
        assert await closing is None


async def test_text_turn_streams_audio_and_transcript(
    connect: Any, llm: OpenAIEmulator, patchbay: Patchbay
) -> None:
    llm.enqueue(Scenario(text=REPLY))
    client: Client = await connect()
    created = (await client.until("session.created"))[-1]
    await client.send(
        "session.update", session={"type": "realtime", "audio": {"input": {"turn_detection": None}}}
    )
    updated = (await client.until("session.updated"))[-1]
    assert updated["session"]["audio"]["input"]["turn_detection"] is None
    await client.send(
        "conversation.item.create",
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Book a table"}]},
    )
    await client.send("response.create")
    events = await client.until("response.done")
    names = types(events)
    assert "conversation.item.created" in names and "response.created" in names
    assert names.index("response.created") < names.index("response.output_audio.delta")
    transcript = "".join(e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta")
    assert transcript == REPLY
    done = events[-1]["response"]
    assert done["status"] == "completed"
    assert done["usage"]["output_tokens"] > 0 and done["usage"]["total_tokens"] > 0
    assert set(done["metadata"]["ttfb_ms"]) == {"stt", "llm", "tts"}
    assert done["output"][0]["content"][0] == {"type": "output_audio", "transcript": REPLY}
    for event in [created, updated, *events]:
        validated(sdk_view(event), known=SDK_GAPS)
    sent = llm.chat_requests[0].json
    assert sent["messages"][-1] == {"role": "user", "content": "Book a table"}


async def test_spoken_turn_and_per_segment_usage(
    connect: Any, llm: OpenAIEmulator, patchbay: Patchbay
) -> None:
    llm.enqueue(Scenario(text=REPLY))
    client: Client = await connect()
    await client.until("session.created")
    await stream_audio(client, speech_24k())
    events = await client.until("response.done")
    names = types(events)
    order = [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.output_audio.delta",
        "response.done",
    ]
    assert [names.index(n) for n in order] == sorted(names.index(n) for n in order)
    completed = next(
        e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed"
    )
    assert completed["transcript"] == "can you book a table for two"
    assert events[-1]["response"]["status"] == "completed"
    for event in events:
        validated(sdk_view(event), known=SDK_GAPS)

    await patchbay.services.usage.flush()
    async with patchbay.services.db.session() as s:
        rows = list(await s.scalars(select(UsageRecord).where(UsageRecord.org_id == patchbay.org_id)))
    by_segment = {r.segment: r for r in rows}
    assert set(by_segment) == {"stt", "llm", "tts"}
    assert len({r.turn_id for r in rows}) == 1 and rows[0].turn_id is not None
    assert by_segment["llm"].billing_source == "byok" and by_segment["llm"].intent == "voice_turn"
    assert by_segment["llm"].output_tokens > 0
    assert by_segment["stt"].audio_seconds > 1.0 and by_segment["stt"].billing_source == "platform"
    assert by_segment["tts"].characters == len("Sure thing.") + len("Your table for two is booked at seven.")


@pytest.fixture
def engines() -> EnginesFactory:
    # 20 chunks of 20 ms per sentence, so a response is still speaking when it is cut.
    return fake_engines(tts=FakeTTS(sample_rate=24_000, chunks=20, chunk_ms=20))


async def test_barge_in_stops_the_deltas_and_the_upstream(connect: Any, llm: OpenAIEmulator) -> None:
    # The LLM writes its first sentence ("Sure", " th", "ing.", " Let" after the role frame) and
    # then stalls: the response stays open while it speaks.
    llm.enqueue(Scenario(text="Sure thing. Let me check the calendar for you now.", stall_after=5))
    client: Client = await connect()
    await client.until("session.created")
    await stream_audio(client, speech_24k())
    before = await client.until("response.output_audio.delta")
    response_id = before[-1]["response_id"]

    await stream_audio(client, resample(speak("No wait, stop."), 16_000, 24_000))
    after_barge = await client.until("input_audio_buffer.speech_started", within=10)
    tail = await client.until("response.done")
    done = tail[-1]["response"]
    assert done["id"] == response_id
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    late = [
        e
        for e in tail
        if e.get("response_id") == response_id and e["type"].startswith("response.output_audio")
    ]
    assert late == []
    assert any(e["type"] == "response.output_audio.delta" for e in before + after_barge)
    # The routed LLM stream was closed upstream (the emulator waits on its own thread).
    assert await asyncio.to_thread(llm.wait_disconnect, 5.0) is not None


async def test_beta_clients_get_beta_names(connect: Any, llm: OpenAIEmulator) -> None:
    llm.enqueue(Scenario(text=REPLY))
    client: Client = await connect(headers={"openai-beta": "realtime=v1"})
    created = await client.recv()
    assert created["session"]["input_audio_format"] == "pcm16"
    await client.send("session.update", session={"turn_detection": None, "output_audio_format": "g711_ulaw"})
    updated = (await client.until("session.updated"))[-1]["session"]
    assert updated["turn_detection"] is None and updated["output_audio_format"] == "g711_ulaw"
    await client.send(
        "conversation.item.create",
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
    )
    await client.send("response.create")
    events = await client.until("response.done")
    names = set(types(events))
    assert {"response.audio.delta", "response.audio_transcript.delta", "response.audio.done"} <= names
    assert not any(n.startswith("response.output_audio") for n in names)
    assert "conversation.item.added" not in names
    for event in events:
        validated(sdk_view(event), beta=True, known=SDK_GAPS)
    ulaw = b"".join(base64.b64decode(e["delta"]) for e in events if e["type"] == "response.audio.delta")
    # The module's FakeTTS speaks 400 ms per sentence; two sentences at 8 kHz, one byte a sample.
    assert abs(len(ulaw) - 2 * 400 * 8) <= 16


async def test_each_response_counts_against_the_keys_rate_limit(
    connect: Any, llm: OpenAIEmulator, patchbay: Patchbay
) -> None:
    clock = [0.0]
    # Three a minute: opening the session takes one, then two responses fit.
    patchbay.services.gateway.rate_limiter = InProcessRateLimiter(RateLimit(3, 60), clock=lambda: clock[0])
    client: Client = await connect()
    await client.until("session.created")
    await client.send("session.update", session={"type": "realtime", "output_modalities": ["text"]})
    await client.until("session.updated")
    outcomes = []
    for _ in range(3):
        llm.enqueue(Scenario(text=REPLY))
        await client.send("response.create")
        events = await client.until("response.done")
        errors = [e["error"]["code"] for e in events if e["type"] == "error"]
        outcomes.append((events[-1]["response"]["status"], errors))
    assert outcomes == [("completed", []), ("completed", []), ("failed", ["rate_limit_exceeded"])]
    assert len(llm.chat_requests) == 2  # the refused turn never went upstream

    clock[0] += 20  # the bucket refills one turn; the same session serves it
    llm.enqueue(Scenario(text=REPLY))
    await client.send("response.create")
    assert (await client.until("response.done"))[-1]["response"]["status"] == "completed"
    assert len(llm.chat_requests) == 3


async def test_cancel_without_a_response_is_an_error_and_the_socket_stays(connect: Any) -> None:
    client: Client = await connect()
    await client.until("session.created")
    await client.send("response.cancel", event_id="evt_1")
    error = (await client.until("error"))[-1]["error"]
    assert error["code"] == "response_cancel_not_active" and error["event_id"] == "evt_1"
    await client.send("input_audio_buffer.clear")
    assert (await client.recv())["type"] == "input_audio_buffer.cleared"


async def test_a_ping_is_answered_behind_what_the_session_has_queued(connect: Any) -> None:
    """`patchbay.ping` (ours): a client's liveness check, answered in order with `patchbay.pong`."""
    client: Client = await connect()
    await client.until("session.created")
    await client.send("input_audio_buffer.clear")
    await client.send("patchbay.ping", event_id="evt_ping")
    await client.send("patchbay.ping")
    events = [await client.recv() for _ in range(3)]
    assert [e["type"] for e in events] == ["input_audio_buffer.cleared", "patchbay.pong", "patchbay.pong"]
    assert set(events[1]) == {"type", "event_id"} and events[1]["event_id"] != "evt_ping"  # the server's own


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("{not json", "invalid_json"),
        ('{"type": "x.unknown"}', "unknown_event_type"),
        ('{"type": "input_audio_buffer.append", "audio": "@@@"}', "invalid_base64"),
        ('{"type": "input_audio_buffer.append", "audio": "AAAA"}', "invalid_audio_format"),
        ('{"type": "input_audio_buffer.append", "audio": 5}', "invalid_value"),
        (
            '{"type": "session.update", "session": {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}}',
            "invalid_value",
        ),
        ('{"type": "conversation.item.truncate", "item_id": "nope", "audio_end_ms": 5}', "invalid_truncate"),
        ('{"type": "input_audio_buffer.commit"}', "input_audio_buffer_commit_empty"),
        ("[1, 2]", "invalid_event"),
    ],
)
async def test_bad_input_gets_an_error_event(connect: Any, message: str, code: str) -> None:
    client: Client = await connect()
    await client.until("session.created")
    await client.send_raw(message)
    error = (await client.until("error"))[-1]["error"]
    assert error["code"] == code
    await client.send("input_audio_buffer.clear")
    assert (await client.recv())["type"] == "input_audio_buffer.cleared"


async def test_oversized_and_binary_frames(connect: Any) -> None:
    client: Client = await connect()
    await client.until("session.created")
    await client.send("input_audio_buffer.append", audio=b64(bytes(60_000)))  # 80 kB of base64 > 64 kB
    assert (await client.until("error"))[-1]["error"]["code"] == "frame_too_large"
    await client.send_raw(b"\x00\x01")
    assert (await client.until("error"))[-1]["error"]["code"] == "unsupported_frame"


async def test_missing_or_wrong_key_is_refused(connect: Any) -> None:
    for key in ("", "pb-not-a-real-key"):
        with pytest.raises(websockets.InvalidStatus) as refused:
            await connect(key=key)
        assert refused.value.response.status_code == 403


async def test_browser_token_connects_and_expires(connect: Any, patchbay: Patchbay) -> None:
    async with httpx.AsyncClient(base_url=patchbay.url) as http:
        minted = await http.post(
            "/v1/realtime/client_secrets",
            headers={"authorization": f"Bearer {patchbay.key}"},
            json={"session": {"type": "realtime", "model": "default"}},
        )
        refused = await http.post("/v1/realtime/client_secrets", json={})
    assert minted.status_code == 200 and refused.status_code == 401
    body = minted.json()
    token = body["value"]
    assert token.startswith("ek_") and body["client_secret"]["value"] == token
    assert patchbay.key not in token
    client: Client = await connect(key="", query=f"token={token}")
    assert (await client.recv())["type"] == "session.created"
    with pytest.raises(websockets.InvalidStatus):
        await connect(key="", query=f"token={token[:-2]}xx")


async def test_an_expired_token_is_refused_saying_so(connect: Any, patchbay: Patchbay) -> None:
    principal = await patchbay.services.gateway.api_keys.authenticate(patchbay.key)
    assert principal is not None
    signer = patchbay.runtime.signer
    clock = signer._clock
    signer._clock = lambda: clock() - 3600  # minted an hour ago
    try:
        expired, _ = signer.mint(principal)
    finally:
        signer._clock = clock
    client: Client = await connect(key="", query=f"token={expired}")
    refusal = await client.recv()
    assert refusal["type"] == "error" and refusal["error"]["code"] == "token_expired"
    assert "client_secrets" in refusal["error"]["message"] and refusal["error"]["param"] == "token"
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await client.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    # A forged token that claims to be expired is still refused in the handshake, saying nothing.
    with pytest.raises(websockets.InvalidStatus):
        await connect(key="", query=f"token={expired[:-2]}xx")


async def test_a_token_is_refused_unless_its_org_and_agent_are_the_keys_own(
    connect: Any, patchbay: Patchbay
) -> None:
    principal = await patchbay.services.gateway.api_keys.authenticate(patchbay.key)
    assert principal is not None
    async with patchbay.services.db.session() as s:
        other = await accounts.create_org(s, "Other Org")
    signer = patchbay.runtime.signer
    forged = [
        signer.mint(replace(principal, org_id=other.id))[0],
        signer.mint(replace(principal, agent_id="agt_not_this_keys"))[0],
    ]
    for token in forged:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await connect(key="", query=f"token={token}")
        assert refused.value.response.status_code == 403
    genuine, _ = signer.mint(principal)
    client: Client = await connect(key="", query=f"token={genuine}")
    assert (await client.recv())["type"] == "session.created"


async def test_sessions_per_key_are_limited(connect: Any, patchbay: Patchbay) -> None:
    patchbay.runtime.sessions = InProcessSessionLimiter(1)
    first: Client = await connect()
    await first.until("session.created")
    with pytest.raises(websockets.InvalidStatus) as refused:
        await connect()
    assert refused.value.response.status_code == 403
    await first.ws.close()


async def test_a_reconnection_naming_its_lost_session_takes_its_place(
    connect: Any, patchbay: Patchbay
) -> None:
    """At the key's limit, a client whose connection died unnoticed reconnects with
    `replaces=<its session id>`: the old session is ended and the new one admitted."""
    patchbay.runtime.sessions = InProcessSessionLimiter(1)
    lost: Client = await connect()
    lost_id = (await lost.until("session.created"))[-1]["session"]["id"]
    with pytest.raises(websockets.InvalidStatus):
        await connect(query="model=default&replaces=sess_someone_else")
    again: Client = await connect(query=f"model=default&replaces={lost_id}")
    assert (await again.recv())["type"] == "session.created"
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await lost.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1000, REPLACED_REASON)
    assert patchbay.runtime.sessions.total == 1


async def test_session_limit_counts_other_workers_sessions_through_redis(
    connect: Any, patchbay: Patchbay, redis_url: str, unique_prefix: str
) -> None:
    def worker() -> RedisSessionLimiter:
        return RedisSessionLimiter(Redis.from_url(redis_url), 1, prefix=unique_prefix)

    principal = await patchbay.services.gateway.api_keys.authenticate(patchbay.key)
    assert principal is not None
    patchbay.runtime.sessions = worker()  # closed with the app
    other = worker()  # another worker process, holding the key's only slot
    try:
        await other.acquire(principal.key_id, "sess_elsewhere")
        with pytest.raises(websockets.InvalidStatus) as refused:
            await connect()
        assert refused.value.response.status_code == 403
        await other.release(principal.key_id, "sess_elsewhere")
        client: Client = await connect()
        assert (await client.recv())["type"] == "session.created"
    finally:
        await other.aclose()


async def test_session_expires_with_an_error_event(connect: Any, patchbay: Patchbay) -> None:
    patchbay.runtime.max_session_seconds = 0.3
    client: Client = await connect()
    events = await client.until("error", within=10)
    assert events[-1]["error"]["code"] == "session_expired"
    with pytest.raises(websockets.ConnectionClosed):
        await client.recv(within=10)


async def test_turn_latency_reaches_the_admin_metrics(
    connect: Any, llm: OpenAIEmulator, patchbay: Patchbay
) -> None:
    llm.enqueue(Scenario(text=REPLY))
    client: Client = await connect()
    await client.until("session.created")
    await stream_audio(client, speech_24k())
    await client.until("response.done")
    async with httpx.AsyncClient(base_url=patchbay.url) as http:
        refused = await http.get("/admin/voice/metrics")
        admin = {"authorization": "Bearer admin-test-token-0123456789abcdefghij"}
        metrics = await http.get("/admin/voice/metrics", headers=admin)
    assert refused.status_code == 401
    body = metrics.json()
    assert body["live_sessions"] == 1
    assert body["latency"]["turns"] == 1 and body["latency"]["server_ms"]["p50"] is not None
