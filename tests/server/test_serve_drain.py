"""`patchbay serve` on SIGTERM with a realtime session open: the session goes on until it ends or
`PATCHBAY_VOICE_DRAIN_SECONDS` runs out, while the port refuses new connections (server/ws_drain.py,
server/worker_supervisor.py; docs/operations.md, "Stopping and rolling updates")."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from server.realtime.endpoint import HANDOVER_REASON
from tests.server.metrics_text import samples, value
from tests.server.realtime.twilio_phone import CALL, Phone, redirect_of, stream_of
from tests.server.test_serve import _serve, _workers, logged_lines
from tests.voice.speech import silence, speak
from voice.audio import resample

pytestmark = pytest.mark.slow

ADMIN = "admin-drain-token-0123456789abcdefghij"
BOUND = 60.0
"""A bound on a hang only: every wait below ends as soon as its condition holds."""


def _api_key(base: str) -> str:
    admin = {"authorization": f"Bearer {ADMIN}"}
    org = httpx.post(f"{base}/admin/v1/orgs", json={"name": "acme"}, headers=admin).json()
    made = httpx.post(f"{base}/admin/v1/orgs/{org['id']}/api-keys", json={"name": "drain"}, headers=admin)
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


async def _session(base: str, key: str, *, resumable: bool = False) -> Any:
    ws = await websockets.connect(
        base.replace("http://", "ws://")
        + "/v1/realtime?model=default"
        + ("&resumable=1" if resumable else ""),
        additional_headers={"authorization": f"Bearer {key}"},
    )
    assert json.loads(await ws.recv())["type"] == "session.created"
    return ws


async def _logged(tmp_path: Path, message: str, count: int = 1) -> list[dict[str, Any]]:
    deadline = time.monotonic() + BOUND
    while len(found := [line for line in logged_lines(tmp_path) if line.get("msg") == message]) < count:
        assert time.monotonic() < deadline, f"no {message!r} logged in {BOUND} s"
        await asyncio.sleep(0.05)  # polling the log for the line, not standing in for it
    return found


async def _updated(ws: Any) -> None:
    """The session still answers: a `session.update` comes back as `session.updated`."""
    await ws.send(json.dumps({"type": "session.update", "session": {"instructions": "Be brief."}}))
    async with asyncio.timeout(BOUND):
        while json.loads(await ws.recv())["type"] != "session.updated":
            pass


async def _phone_call(base: str, key: str | None = None, *, redirect: str | None = None) -> tuple[Phone, str]:
    """A Twilio call's media stream, started as the webhook's TwiML says (or, with `redirect`, as
    the TwiML Twilio gets there says); and where that TwiML redirects once the stream closes."""
    async with httpx.AsyncClient() as http:
        if redirect is None:
            answered = await http.post(
                f"{base}/v1/twilio/voice", data=CALL, headers={"authorization": f"Bearer {key}"}
            )
        else:
            answered = await http.post(redirect, data=CALL)
    assert answered.status_code == 200, answered.text
    url, parameters = stream_of(answered.text)
    assert (redirect is not None) == ("resume" in parameters)
    phone = Phone(await websockets.connect(url))
    await phone.start(parameters)
    return phone, redirect_of(answered.text)


async def _closed(phone: Phone) -> int:
    async with asyncio.timeout(BOUND):
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await phone.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


def _refused(base: str) -> bool:
    try:
        httpx.get(f"{base}/healthz", timeout=BOUND)
    except httpx.ConnectError:
        return True
    return False


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_an_open_session_outlasts_sigterm_until_it_ends(tmp_path: Path, workers: str) -> None:
    env = {"PATCHBAY_ADMIN_TOKEN": ADMIN, "PATCHBAY_VOICE_DRAIN_SECONDS": "600"}
    with _serve(tmp_path, "--workers", workers, env_extra=env) as (proc, base, _):
        key = _api_key(base)
        ws = await _session(base, key)
        proc.send_signal(signal.SIGTERM)
        (line,) = await _logged(tmp_path, "realtime session draining")
        assert line["path"] == "/v1/realtime" and line["drain_seconds"] == 600
        # Uvicorn used to close it here with 1012. It goes on, and the port takes no one new:
        # the connection is refused, not left in a listening socket nobody accepts from.
        await _updated(ws)
        if workers == "2":
            await _logged(tmp_path, "patchbay stopped")  # the other worker, which had no session
        assert await asyncio.to_thread(_refused, base)
        await _updated(ws)
        assert proc.poll() is None
        await ws.close()
        # The last session ended: the server stops now, not at the end of the 600 s drain.
        code = await asyncio.to_thread(proc.wait, BOUND)
        assert code in (0, -signal.SIGTERM)
        messages = [line["msg"] for line in logged_lines(tmp_path)]
    assert "realtime session closed at the end of the drain" not in messages
    assert messages.count("patchbay stopped") == int(workers)


@pytest.mark.parametrize("drain", ["1", "0"])
async def test_a_session_open_when_the_drain_runs_out_is_closed_as_a_restart(
    tmp_path: Path, drain: str
) -> None:
    """At the end of a 1 s drain, or at once with none (uvicorn's own behaviour): 1012."""
    env = {"PATCHBAY_ADMIN_TOKEN": ADMIN, "PATCHBAY_VOICE_DRAIN_SECONDS": drain}
    with _serve(tmp_path, env_extra=env) as (proc, base, _):
        ws = await _session(base, _api_key(base))
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(BOUND):
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        assert await asyncio.to_thread(proc.wait, BOUND) in (0, -signal.SIGTERM)
        if drain == "1":
            (line,) = await _logged(tmp_path, "realtime session closed at the end of the drain")
            assert line["drain_seconds"] == 1
    draining = [line for line in logged_lines(tmp_path) if "drain" in line["msg"]]
    assert [line["msg"] for line in draining] == (
        ["realtime session draining", "realtime session closed at the end of the drain"]
        if drain == "1"
        else []
    )


def _pcm24(pcm16k: bytes) -> str:
    """Test speech (PCM16 16 kHz) as a GA session's default input takes it: base64 PCM16 24 kHz."""
    return base64.b64encode(resample(pcm16k, 16_000, 24_000)).decode()


async def _append(ws: Any, pcm16k: bytes) -> None:
    for at in range(0, len(pcm16k), 1280):  # 40 ms frames
        await ws.send(
            json.dumps({"type": "input_audio_buffer.append", "audio": _pcm24(pcm16k[at : at + 1280])})
        )


async def _until_closed(ws: Any) -> tuple[list[str], Any]:
    """The event types received until the server closed the socket, and its close frame."""
    seen: list[str] = []
    async with asyncio.timeout(BOUND):
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                seen.append(json.loads(await ws.recv())["type"])
    return seen, closed.value.rcvd


async def test_a_reload_replaces_the_workers_without_cutting_a_session(tmp_path: Path) -> None:
    """SIGHUP with three sessions: each new worker serves before the old one stops, and the old
    ones drain. Two clients resume (`resumable=1`, as the browser SDK connects): the idle one is
    closed with 1012 at once, not at the end of the 600 s drain; the one speaking when the drain
    starts only once its turn has been heard out, transcribed and answered, every event of it
    delivered first. The third, a plain Realtime client, is held until it leaves; then the old
    workers stop. (A session opened during the reload is a plain one too: it may land on an old
    worker not yet replaced, which would hand a resuming one over.)"""
    env = {"PATCHBAY_ADMIN_TOKEN": ADMIN, "PATCHBAY_VOICE_DRAIN_SECONDS": "600"}
    speech = speak("Please schedule a meeting with the design team for tomorrow morning.")
    half = len(speech) // 4 * 2
    with _serve(tmp_path, "--workers", "2", env_extra=env) as (proc, base, _):
        key = _api_key(base)
        idle = await _session(base, key, resumable=True)
        speaking = await _session(base, key, resumable=True)
        held = await _session(base, key)
        phone, redirect = await _phone_call(base, key)
        await _logged(tmp_path, "twilio call connected")
        await _append(speaking, silence(300) + speech[:half])
        async with asyncio.timeout(BOUND):
            while json.loads(await speaking.recv())["type"] != "input_audio_buffer.speech_started":
                pass
        old = _workers(proc.pid)
        proc.send_signal(signal.SIGHUP)
        seen, close = await _until_closed(idle)
        assert close is not None and (close.code, close.reason) == (1012, HANDOVER_REASON)
        assert seen == []
        await _updated(speaking)  # still open, mid-sentence
        await _append(speaking, speech[half:] + silence(1000))
        seen, close = await _until_closed(speaking)
        assert close is not None and (close.code, close.reason) == (1012, HANDOVER_REASON)
        turn = ["input_audio_buffer.speech_stopped", "input_audio_buffer.committed", "response.done"]
        assert [kind for kind in seen if kind in turn] == turn, seen
        transcribed = {
            "conversation.item.input_audio_transcription.completed",
            "conversation.item.input_audio_transcription.failed",
        }
        assert transcribed & set(seen) and seen[-1] == "response.done", seen
        lines = await _logged(tmp_path, "realtime session handed over at a quiet moment of the drain", 2)
        assert [line["ended_by"] for line in lines] == ["handed_over"] * 2
        # The phone call, quiet, moved at once: its stream closed and Twilio's redirect gets a
        # new stream that goes on with the call's conversation.
        assert await _closed(phone) == 1000
        await _logged(tmp_path, "twilio call handed over at a quiet moment of the drain")
        # Twilio redirects at once; here only once both old workers stopped listening (each logs
        # this as it closes its sockets), so the new stream lands on a worker that stays, not on
        # one yet to be replaced, which would hand the call over once more.
        await _logged(tmp_path, "Shutting down", 2)
        phone, _ = await _phone_call(base, redirect=redirect)
        connected = await _logged(tmp_path, "twilio call connected", 2)
        assert [line["resumed"] for line in connected] == [False, True]
        await _updated(held)  # the plain client's session goes on in the draining worker
        # The port still serves during the reload (on a new worker, or on an old one yet to be
        # replaced, which then drains this session too).
        again = await _session(base, key)
        await _updated(again)
        async with httpx.AsyncClient() as http:
            metrics = await http.get(f"{base}/metrics", headers={"authorization": f"Bearer {ADMIN}"})
        closes = samples(metrics.text)
        assert value(closes, "patchbay_voice_drain_closes_total", how="quiet") == 3
        assert value(closes, "patchbay_voice_drain_closes_total", how="deadline") == 0
        for session in (held, again, phone.ws):
            await session.close()
        deadline = time.monotonic() + BOUND
        while _workers(proc.pid) & old or len(_workers(proc.pid)) != 2:
            assert time.monotonic() < deadline, "the old workers did not stop once their sessions ended"
            await asyncio.sleep(0.1)  # polling the process table, not standing in for it
    assert "realtime session closed at the end of the drain" not in [m["msg"] for m in logged_lines(tmp_path)]
