"""The browser voice client (`/sdk/patchbay-voice.js`) in a real Chromium against a real Patchbay.

docs/examples/voice.html is served as an app on its own origin would serve it (Playwright
answers for `http://localhost:<port>`, with the page's Permissions-Policy and CSP), and its
`/voice-token` endpoint is "the app's backend": it mints the token with the API key through
`POST /v1/realtime/client_secrets`, so the key never reaches the page. Chromium's fake
microphone plays a WAV made with espeak-ng; the internal engines (Whisper, espeak-ng) answer
and an emulated LLM writes the reply. A turn must come back as a transcript in the page and
reply audio played by the module's output node (its `stats`); an expired token must be
refused with a clear error in the page and no retry loop; a dropped connection must reconnect
into a session that holds the conversation so far.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from routing.speech import BuiltIn
from server.realtime.endpoint import HANDOVER_REASON
from server.realtime.tokens import TokenSigner
from server.voice_sdk import mount_sdk
from tests.emulators.harness import ServedApp
from tests.emulators.openai import OpenAIEmulator, Scenario
from tests.emulators.tcp_proxy import TcpProxy
from tests.server.web.conftest import Live
from tests.server.web.voice_browser import (
    TOKEN_SECRET,
    fake_mic_chromium,
    voice_patchbay,
    write_wav,
)
from tests.voice.speech import silence, speak
from tests.voice.wer import word_error_rate

pytestmark = pytest.mark.slow
EXAMPLE = Path(__file__).parents[3] / "docs" / "examples" / "voice.html"
QUESTION = "Please schedule a meeting with the design team for tomorrow morning."
REPLY = "Done. The meeting is booked for nine tomorrow morning."
FOLLOW_UP = "At nine, in the large room."
TURN_TIMEOUT_MS = 60_000
HELD_FRAMES = 60
"""Microphone frames (40 ms) caught before the session is ready, in the first test."""


@pytest.fixture(scope="module")
def question_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the fake microphone says: the question, then silence long enough for the reply."""
    path = tmp_path_factory.mktemp("audio") / "question.wav"
    return write_wav(path, silence(600), speak(QUESTION), silence(20_000))


@pytest.fixture
async def patchbay(
    tmp_path: Path, internal_engines: BuiltIn, emulator: tuple[OpenAIEmulator, str]
) -> AsyncIterator[tuple[Live, str]]:
    """A live Patchbay with the internal engines, an org whose LLM is the emulator, and its API key."""
    async with voice_patchbay(tmp_path, internal_engines, emulator[1]) as (live, _, key):
        yield live, key


@pytest.fixture
async def cold_patchbay(
    tmp_path: Path, internal_engines: BuiltIn, emulator: tuple[OpenAIEmulator, str]
) -> AsyncIterator[tuple[Live, str]]:
    """The same, for tests that hear no speech: the Whisper model is not loaded."""
    async with voice_patchbay(tmp_path, internal_engines, emulator[1], warm=False) as (live, _, key):
        yield live, key


@pytest.fixture
def sdk_origin() -> Iterator[str]:
    """Only the SDK's modules, served as Patchbay serves them: for tests of the modules' logic."""
    app = FastAPI()
    mount_sdk(app)
    with ServedApp(app) as served:
        yield served.url


@pytest.fixture
async def chromium(question_wav: Path) -> AsyncIterator[Any]:
    async with fake_mic_chromium(question_wav) as browser:
        yield browser


def example_app(patchbay_url: str, mint: Callable[[], Awaitable[dict[str, Any]]]) -> Starlette:
    """The app serving the example page, with the policy it needs, and its backend's `/voice-token`."""
    ws = patchbay_url.replace("http://", "ws://")
    policy = {
        "permissions-policy": "microphone=(self)",
        "content-security-policy": (
            f"default-src 'self'; script-src 'self' 'unsafe-inline' {patchbay_url}; "
            f"connect-src 'self' {patchbay_url} {ws}; style-src 'unsafe-inline'"
        ),
    }

    async def page(request: Request) -> Response:
        return HTMLResponse(EXAMPLE.read_text(), headers=policy)

    async def token(request: Request) -> Response:
        return JSONResponse(await mint())

    return Starlette(routes=[Route("/voice.html", page), Route("/voice-token", token, methods=["POST"])])


@asynccontextmanager
async def example_page(
    browser: Any, patchbay_url: str, mint: Callable[[], Awaitable[dict[str, Any]]]
) -> AsyncIterator[tuple[Any, list[str]]]:
    """The example page, served by an app on an origin of its own, open in a fresh context."""
    with ServedApp(example_app(patchbay_url, mint)) as app:
        context = await browser.new_context(locale="en-US")
        context.set_default_timeout(TURN_TIMEOUT_MS)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        try:
            await page.goto(f"{app.url}/voice.html?patchbay={patchbay_url}")
            await page.locator("#status", has_text="idle").wait_for()
            yield page, errors
        finally:
            await context.close()


async def mint_token(patchbay_url: str, key: str, minted: list[str]) -> dict[str, Any]:
    """What the app's backend does: mint a realtime token with its API key (noted in `minted`)."""
    async with httpx.AsyncClient(base_url=patchbay_url) as http:
        answer = await http.post(
            "/v1/realtime/client_secrets",
            headers={"authorization": f"Bearer {key}"},
            json={"session": {"type": "realtime", "model": "default"}},
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    minted.append(body["value"])
    return {"value": body["value"], "expires_at": body["expires_at"]}


async def in_sdk_page(chromium: Any, origin: str, script: str) -> Any:
    """`script` evaluated in a page on the SDK's origin, where its modules import (no audio)."""
    context = await chromium.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"{origin}/sdk/patchbay-voice.js")
        return await page.evaluate(script)
    finally:
        await context.close()


async def test_a_turn_through_the_example_page(
    chromium: Any, patchbay: tuple[Live, str], emulator: tuple[OpenAIEmulator, str]
) -> None:
    live, key = patchbay
    emulator[0].enqueue(Scenario(text=REPLY))
    minted: list[str] = []
    # The token is held back until the microphone has caught the silence and the question's first
    # words: what it caught before the session was ready must reach the server, not be dropped.
    caught = threading.Event()

    async def mint() -> dict[str, Any]:
        assert await asyncio.to_thread(caught.wait, TURN_TIMEOUT_MS / 1000), "the microphone caught nothing"
        return await mint_token(live.url, key, minted)

    async with example_page(chromium, live.url, mint) as (page, errors):
        await page.click("#start")
        # 60 frames of 40 ms: the WAV's 0.6 s of silence and the question's first 1.8 s.
        await page.wait_for_function(f"() => window.voice.stats.framesHeld >= {HELD_FRAMES}")
        caught.set()
        user = page.locator("#log p.user").first
        await user.wait_for()
        heard = (await user.text_content() or "").removeprefix("user: ")
        assert word_error_rate([QUESTION], [heard]) < 0.25, heard
        reply = page.locator("#log p.assistant").first
        await reply.wait_for()
        assert await reply.text_content() == f"assistant: {REPLY}"
        # The reply's audio went through the player node to the output, most of it at least.
        await page.wait_for_function("() => window.voice.stats.msPlayed > 1500")
        stats = await page.evaluate("window.voice.stats")
        assert stats["framesSent"] > 25 and stats["framesPlayed"] > 100 and stats["responses"] == 1
        assert stats["framesHeld"] >= HELD_FRAMES
        assert await page.text_content("#status") == "open"
        assert await page.text_content("#error") == ""
        assert "heard after" in (await page.text_content("#latency") or "")
        assert len(minted) == 1 and key not in await page.content()
        assert errors == []


async def test_a_reconnection_carries_the_conversation_over(
    chromium: Any, patchbay: tuple[Live, str], emulator: tuple[OpenAIEmulator, str]
) -> None:
    live, key = patchbay
    emulator[0].enqueue(Scenario(text=REPLY), Scenario(text=FOLLOW_UP))
    minted: list[str] = []

    async def mint() -> dict[str, Any]:
        return await mint_token(live.url, key, minted)

    async with example_page(chromium, live.url, mint) as (page, errors):
        await page.click("#start")
        await page.evaluate(
            "() => { window.resumed = []; window.voice.on('resumed', (e) => window.resumed.push(e)); }"
        )
        heard = (await page.locator("#log p.user").first.text_content() or "").removeprefix("user: ")
        await page.wait_for_function("() => window.voice.stats.responses === 1")
        before = len(emulator[0].chat_requests)
        # The network drops (any close but a refusal): the client reconnects with a new token,
        # and the reply audio it already has plays out meanwhile (the reply's text is carried over).
        played = await page.evaluate(
            "() => { const ms = window.voice.stats.msPlayed; window.voice.ws.close(4000, 'network gone'); return ms; }"
        )
        await page.wait_for_function(
            "() => window.voice.stats.reconnects === 1 && window.voice.state === 'open'"
        )
        assert len(minted) == 2
        assert await page.evaluate("window.resumed") == [{"items": 2}]
        await page.wait_for_function("() => window.voice.current === null")  # the reply played out
        after = await page.evaluate("window.voice.stats.msPlayed")
        assert after > played + 2000, (played, after)  # the reply is about 3.5 s of audio
        assert (
            await page.locator("#log p.system").last.text_content()
            == "system: reconnected: 2 messages carried over"
        )
        # A typed follow-up in the new session: its LLM call carries the turn before the drop.
        await page.evaluate(
            """() => {
              window.voice.send({type: "conversation.item.create", item: {type: "message", role: "user",
                content: [{type: "input_text", text: "When is it?"}]}});
              window.voice.send({type: "response.create"});
            }"""
        )
        await page.wait_for_function("() => window.voice.stats.responses === 2")
        assert await page.locator("#log p.assistant").nth(1).text_content() == f"assistant: {FOLLOW_UP}"
        assert len(emulator[0].chat_requests) == before + 1
        sent = emulator[0].chat_requests[-1].json["messages"]
        said = [(m["role"], m["content"]) for m in sent if m["role"] != "system"]
        assert said == [("user", heard), ("assistant", REPLY), ("user", "When is it?")], said
        assert errors == []


async def test_a_call_survives_a_silent_network_drop_and_then_a_deploy(
    tmp_path: Path, internal_engines: BuiltIn, chromium: Any, emulator: tuple[OpenAIEmulator, str]
) -> None:
    """One call, two interruptions. First the network drops the path without closing it (the
    proxy stops carrying bytes, no FIN): the client's ping goes unanswered, so it gives the
    socket up and reconnects, conversation included, instead of talking into a dead socket
    until TCP gives up; the key allows one session, which the server still counts, so the
    reconnection names it and takes its place. Then the worker drains (a deploy): the session
    is closed with 1012 at its first quiet moment, and the client reconnects at once with a new
    token, carries the conversation over again and sends its last half second of audio again."""
    emulator[0].enqueue(Scenario(text=REPLY))
    minted: list[str] = []
    async with voice_patchbay(
        tmp_path, internal_engines, emulator[1], drain=True, voice_max_sessions_per_key=1
    ) as (live, _, key):

        async def mint() -> dict[str, Any]:
            return await mint_token(live.url, key, minted)

        port = int(live.url.rsplit(":", 1)[1])
        async with (
            TcpProxy("127.0.0.1", port) as proxy,
            example_page(chromium, proxy.url(live.url), mint) as (page, errors),
        ):
            await page.evaluate(
                """() => {
                  window.voice.options.heartbeatMs = 2000;
                  window.problems = [];
                  window.voice.on('error', (e) => window.problems.push(e));
                  window.resumed = [];
                  window.voice.on('resumed', (e) => window.resumed.push(e));
                }"""
            )
            await page.click("#start")
            await page.wait_for_function("() => window.voice.stats.responses === 1")
            assert await page.evaluate("window.voice.stats.connectionsLost") == 0  # pings kept it alive
            lost_session = await page.evaluate("window.voice.sessionId")
            assert live.services.voice.sessions.total == 1
            assert await proxy.freeze() >= 1
            await page.wait_for_function(
                "() => window.voice.stats.reconnects === 1 && window.voice.state === 'open'"
            )
            (lost,) = await page.evaluate("window.problems")
            assert (lost["code"], lost["fatal"]) == ("connection_lost", False)
            assert lost["message"].startswith("no answer from the server for ")
            assert await page.evaluate("window.voice.stats.connectionsLost") == 1
            assert await page.evaluate("window.resumed") == [{"items": 2}]
            assert await page.evaluate("window.voice.sessionId") not in (None, lost_session)
            assert live.services.voice.sessions.total == 1  # the lost session was ended
            assert len(minted) == 2
            # The deploy, once the new session has sent at least the half second sent again.
            sent = await page.evaluate("window.voice.stats.framesSent")
            await page.wait_for_function(f"() => window.voice.stats.framesSent >= {sent + 13}")
            await page.evaluate(
                "() => window.voice.ws.addEventListener('close', (e) => { window.closedWith = [e.code, e.reason]; })"
            )
            assert live.drain_sessions() >= 1
            await page.wait_for_function(
                "() => window.voice.stats.reconnects === 2 && window.voice.state === 'open'"
            )
            assert await page.evaluate("window.closedWith") == [1012, HANDOVER_REASON]
            assert len(minted) == 3
            assert await page.evaluate("window.resumed") == [{"items": 2}, {"items": 2}]
            assert await page.evaluate("window.voice.stats.framesResent") == 13  # 500 ms of 40 ms frames
            assert len(await page.evaluate("window.problems")) == 1  # the handover is no error
            assert errors == []


async def test_the_heartbeat_pings_after_silence_and_gives_up_on_no_answer(
    sdk_origin: str, chromium: Any
) -> None:
    """The heartbeat's schedule, on a clock the test moves (no waiting)."""
    log = await in_sdk_page(
        chromium,
        sdk_origin,
        """async () => {
              const { Heartbeat } = await import("/sdk/patchbay-voice-heartbeat.js");
              let t = 0;
              const log = [];
              const beat = new Heartbeat(1000, {
                ping: () => log.push(["ping", t]), lost: (ms) => log.push(["lost", t, ms]), now: () => t,
              });
              beat.stop();  // the test ticks it
              for (t = 0; t <= 900; t += 100) beat.tick();   // not silent long enough
              t = 1000; beat.tick();                         // ping
              t = 1500; beat.heard(); beat.tick();           // answered: nothing more
              t = 2400; beat.tick();
              t = 2500; beat.tick();                         // silent again: ping
              t = 3400; beat.tick();
              t = 3500; beat.tick();                         // no answer: lost, 2 s after the last word
              t = 9000; beat.tick();                         // and only once
              const off = new Heartbeat(0, { ping: () => log.push(["never"]), lost: () => log.push(["never"]) });
              // The client keeps the pongs to itself: an app's `event` listener never sees them.
              const { PatchbayVoice } = await import("/sdk/patchbay-voice.js");
              const voice = new PatchbayVoice({ getToken: async () => "unused" });
              const events = [];
              voice.on("event", (e) => events.push(e.type));
              voice.receive({ type: "patchbay.pong" });
              voice.receive({ type: "rate_limits.updated" });
              return [...log, ["off", off.timer], events];
            }""",
    )
    assert log == [
        ["ping", 1000],
        ["ping", 2500],
        ["lost", 3500, 2000],
        ["off", None],
        ["rate_limits.updated"],
    ]


async def test_the_conversation_keeps_what_the_caller_heard_of_an_interrupted_reply(
    sdk_origin: str, chromium: Any
) -> None:
    """The client's record, fed the server's events of a barge-in: it asks for the truncated item
    again and replays the heard text, not the whole reply (no audio needed)."""
    result = await in_sdk_page(
        chromium,
        sdk_origin,
        """async () => {
              const { Conversation } = await import("/sdk/patchbay-voice-conversation.js");
              const c = new Conversation(3);
              const user = (id) => ({type: "message", id, role: "user", content: [{type: "input_audio", transcript: null}]});
              const asks = [
                {type: "conversation.item.added", item: user("u1")},
                {type: "conversation.item.input_audio_transcription.completed", item_id: "u1", transcript: "Book a room."},
                {type: "response.output_item.added", item: {type: "message", id: "a1", role: "assistant", content: [{type: "output_audio", transcript: ""}]}},
                {type: "conversation.item.truncated", item_id: "a1", content_index: 0, audio_end_ms: 700},
                {type: "response.output_audio_transcript.done", item_id: "a1", transcript: "Sure, which room would you like?"},
                {type: "conversation.item.retrieved", item: {type: "message", id: "a1", role: "assistant", content: [{type: "output_audio", transcript: "Sure,"}]}},
                {type: "response.output_item.done", item: {type: "message", id: "a1", role: "assistant", content: [{type: "output_audio", transcript: "Sure, which room would you like?"}]}},
                {type: "conversation.item.added", item: {type: "function_call", id: "f1", name: "book", arguments: "{}"}},
                {type: "conversation.item.added", item: user("u2")},
                {type: "conversation.item.added", item: user("u3")},
                {type: "conversation.item.input_audio_transcription.completed", item_id: "u3", transcript: "The big one."},
                {type: "conversation.item.truncated", item_id: "gone", content_index: 0, audio_end_ms: 0},
              ].map((event) => c.follow(event)).filter(Boolean);
              // With `resume: false` the client keeps nothing, so a reconnection replays nothing.
              const { PatchbayVoice } = await import("/sdk/patchbay-voice.js");
              const off = new PatchbayVoice({ getToken: async () => "unused", resume: false });
              off.receive({type: "conversation.item.added", item: {type: "message", id: "u9", role: "user", content: [{type: "input_text", text: "Hi."}]}});
              off.replayConversation();
              // A barge-in over a reply from before a reconnection: that item is text in the new
              // session, so only an item whose audio came over this connection is truncated.
              const sent = [];
              const voice = new PatchbayVoice({ getToken: async () => "unused" });
              voice.audio = { ms: (samples) => samples / 24, clear() {} };
              voice.ws = { readyState: WebSocket.OPEN, send: (text) => sent.push(JSON.parse(text)) };
              voice.heardHere.add("a2");
              for (const item of ["a1", "a2"]) {
                voice.current = item;
                voice.stopPlayback(true);
                voice.fromPlayer({ type: "cleared", item, played: 2400, pending: true });
              }
              return {
                asks, replay: c.replay(), size: c.size,
                off: [off.conversation.size, off.stats.itemsReplayed],
                truncated: sent.map((e) => [e.type, e.item_id, e.audio_end_ms]),
              };
            }""",
    )
    assert result["asks"] == [{"type": "conversation.item.retrieve", "item_id": "a1"}]
    assert result["off"] == [0, 0]
    assert result["truncated"] == [["conversation.item.truncate", "a2", 100]]
    assert result["size"] == 3  # u1 fell out (limit 3): a1, u2 (never transcribed), u3
    assert result["replay"] == [
        {
            "type": "conversation.item.create",
            "item": {
                "id": "a1",
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Sure,"}],
            },
        },
        {
            "type": "conversation.item.create",
            "item": {
                "id": "u3",
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "The big one."}],
            },
        },
    ]


async def test_an_expired_token_is_refused_with_a_clear_error(
    chromium: Any, cold_patchbay: tuple[Live, str]
) -> None:
    live, key = cold_patchbay
    principal = await live.services.gateway.api_keys.authenticate(key)
    assert principal is not None
    long_ago = TokenSigner(TOKEN_SECRET.encode(), ttl=60, clock=lambda: 1_700_000_000.0)
    calls: list[str] = []

    async def mint() -> dict[str, Any]:
        token, expires = long_ago.mint(principal)
        calls.append(token)
        return {"value": token, "expires_at": expires}

    async with example_page(chromium, live.url, mint) as (page, errors):
        await page.click("#start")
        await page.locator("#status", has_text="closed").wait_for()
        error = await page.text_content("#error") or ""
        assert "expired" in error and "(token_expired)" in error and "client_secrets" in error, error
        assert error.startswith("Stopped: ")
        assert len(calls) == 1  # refused for good: no reconnect loop burning tokens
        assert await page.evaluate("window.voice.stats.reconnects") == 0
        assert errors == []


async def test_the_module_is_served_to_other_origins_and_the_admin_ui_keeps_the_microphone_off(
    cold_patchbay: tuple[Live, str],
) -> None:
    live, _ = cold_patchbay
    async with httpx.AsyncClient(base_url=live.url) as http:
        for name in (
            "patchbay-voice.js",
            "patchbay-voice-audio.js",
            "patchbay-voice-conversation.js",
            "patchbay-voice-heartbeat.js",
            "patchbay-voice-worklet.js",
        ):
            path = f"/sdk/{name}"
            answer = await http.get(path, headers={"origin": "https://app.example"})
            assert answer.status_code == 200
            assert answer.headers["content-type"] == "text/javascript; charset=utf-8"
            assert answer.headers["cache-control"] == "public, no-cache" and answer.headers["etag"]
            assert answer.headers["access-control-allow-origin"] == "*"
            again = await http.get(path, headers={"if-none-match": answer.headers["etag"]})
            assert again.status_code == 304
        assert (await http.get("/sdk/nothing.js")).status_code == 404
        ui = await http.get("/ui/")
    assert "microphone=()" in ui.headers["permissions-policy"]
    assert "access-control-allow-origin" not in ui.headers
