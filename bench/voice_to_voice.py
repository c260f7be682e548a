"""Voice-to-voice latency: end of the caller's speech to the first reply audio at the client,
with ElevenLabs TTS per sentence over HTTP against streamed over its `stream-input` WebSocket.

Patchbay (the real app, SQLite, uvicorn in this process's event loop, the client in the same
loop), the ElevenLabs emulator (Scribe STT, HTTP TTS and the TTS WebSocket) and the OpenAI
emulator (the LLM), each in a process of its own, with realistic provider timings: STT answers 150 ms after the upload,
the LLM's first token comes 300 ms after the request and the rest one token (a word or half a long one) every 20 ms, TTS's
first audio 120 ms after a sentence's request (HTTP) or after the WebSocket's generation starts
(its buffer reaching the first step of its chunk schedule, 120 characters, a flush, or the end).
Two realtime sessions (server VAD, 500 ms endpointing) speak a question (espeak-ng) in
real-time 20 ms frames, turn after turn: one is answered with a short first sentence (45
characters), the other with a long one (134 characters, no clause mark: a typical agent's
confirmation). Turns go round short/per-sentence, short/streamed, long/per-sentence,
long/streamed, so every case sees the same machine state.

Reported per mode, p50 / p95 over the turns (the first turn of each mode is a warm-up):
- `client`: from the last voiced frame sent to the first `response.output_audio.delta`
  received: what the caller hears, the endpointing silence included;
- `server`: `response.metadata.v2v_ms`, from the end of speech as the server detected it
  (after the silence) to the first audio handed to the socket;
- `patchbay`: `response.metadata.server_ms`, that minus the providers' own time (STT, LLM
  time to first token, TTS time to first byte), which still includes the LLM writing its
  first sentence;
- `writing`: the LLM's first token to the first TTS request (per sentence: the model writing
  its first sentence, and the chunker cutting it; streamed: to the first generation's start);
- `own`: `patchbay` minus `writing`: what Patchbay itself adds;
- `tts`: the TTS request (per sentence) or the first generation's start (streamed) to its
  first audio, as the server saw it.
- `stt`: the end of speech (HTTP: the upload; realtime: the commit) to the transcript, as the
  server saw it.

`--stt realtime` hears the caller over Scribe v2 Realtime (the org's STT chain
`elevenlabs/scribe_v2_realtime`: audio streamed while the caller speaks, the committed
transcript `STT_COMMIT_S` after the commit) instead of HTTP Scribe (`--stt http`, the default:
one upload after the endpoint, answered `STT_S` later).

Run `/work/main/.venv/bin/python bench/voice_to_voice.py --turns 20` (`--json FILE` keeps the
figures). Results go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import orjson
import uvicorn
import websockets

from tests.emulators import elevenlabs as el
from tests.emulators.harness import free_port
from tests.emulators.openai import OpenAIEmulator, Scenario

STT_S, LLM_TTFT_S, TTS_FIRST_BYTE_S, WORD_S = 0.150, 0.300, 0.120, 0.020
STT_COMMIT_S = 0.050
"""Scribe v2 Realtime: the commit to the committed transcript (the audio is decoded as it
streams; an assumption, as STT_S is for HTTP Scribe's whole decode)."""
STT_MODELS = {"http": "elevenlabs/scribe_v1", "realtime": "elevenlabs/scribe_v2_realtime"}
FRAME_MS = 20
SILENCE_MS = 500
QUESTION = "What time does the pharmacy close on Sunday?"
REPLIES = {
    "short": "The pharmacy closes at six on Sunday evening. It opens again at nine on Monday morning.",
    "long": (
        "Your appointment with Doctor Patel is confirmed for Thursday the fourteenth at half past ten"
        " in the morning at our Main Street clinic. Please arrive ten minutes early to fill in the forms."
    ),
}
LLM_KEY = "sk-bench-0123456789abcdef"
ELEVEN_KEY = "sk_bench0123456789abcdef0123"
MASTER_KEY = "v1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="
MODES = ("per-sentence", "streamed")
CASES = tuple((reply, mode) for reply in REPLIES for mode in MODES)


class TimedElevenLabs(el.ElevenLabsEmulator):
    """The emulator with the provider's own time: Scribe's answer, HTTP TTS's first byte."""

    def __init__(self) -> None:
        super().__init__(tone_seconds=0.5)
        self.stream_input.first_byte_delay = TTS_FIRST_BYTE_S
        self.stream_input.tone_seconds = 0.5
        self.realtime_stt.commit_delay = STT_COMMIT_S

    async def stt(self, request: Any) -> Any:
        await asyncio.sleep(STT_S)
        return await super().stt(request)

    async def tts(self, request: Any) -> Any:
        await asyncio.sleep(TTS_FIRST_BYTE_S)
        return await super().tts(request)


def question_frames() -> tuple[list[bytes], int]:
    """The question at 24 kHz in 20 ms frames, then silence; and the index after its last voiced frame."""
    from tests.voice.speech import silence, speak
    from voice.audio import resample

    pcm = resample(silence(200) + speak(QUESTION) + silence(1500), 16_000, 24_000)
    step = 24_000 * 2 * FRAME_MS // 1000
    frames = [pcm[i : i + step] for i in range(0, len(pcm) - step + 1, step)]
    loud = [i for i, f in enumerate(frames) if np.abs(np.frombuffer(f, "<i2")).max() > 500]
    return frames, loud[-1] + 1


async def set_up(
    settings: Any, llm_url: str, eleven_url: str, stt: str = STT_MODELS["http"]
) -> tuple[Any, str]:
    from providers.vault.secret import Secret
    from routing.speech import BuiltIn
    from server import accounts
    from server.services import Overrides, Services
    from tests.voice.fakes import FakeSTT, FakeTTS

    internal = BuiltIn(stt=FakeSTT(), tts=FakeTTS("internal:fake"))
    services = Services.build(settings, overrides=Overrides(internal_engines=internal))
    await services.db.upgrade()
    async with services.db.session() as s:
        org = await accounts.create_org(s, "Bench")
        conns = services.connections()
        await conns.create(s, org.id, provider="openai", name="main", base_url=llm_url, key=Secret(LLM_KEY))
        await conns.create(s, org.id, provider="elevenlabs", base_url=eleven_url, key=Secret(ELEVEN_KEY))
        await services.agents().set_org_routing(
            s,
            org.id,
            chains={
                "chat": ["openai/gpt-4o-mini"],
                "stt": [stt],
                "tts": ["elevenlabs/eleven_flash_v2_5"],
            },
        )
        key = (await accounts.create_api_key(s, org.id, name="bench")).key
    return services, key


async def turn(ws: Any, frames: list[bytes], voiced_end: int) -> dict[str, Any]:
    """Speak once; the client-side times and the reply's metadata."""
    first_audio: float | None = None
    speech_end = 0.0

    async def read() -> dict[str, Any]:
        nonlocal first_audio
        while True:
            event = orjson.loads(await ws.recv())
            if event["type"] == "response.output_audio.delta" and first_audio is None:
                first_audio = time.perf_counter()
            elif event["type"] == "response.done":
                return dict(event["response"])
            elif event["type"] == "error":
                raise RuntimeError(event)

    reader = asyncio.create_task(read())
    start = time.perf_counter()
    for i, frame in enumerate(frames):
        await asyncio.sleep(max(0.0, start + i * FRAME_MS / 1000 - time.perf_counter()))
        payload = {"type": "input_audio_buffer.append", "audio": base64.b64encode(frame).decode()}
        await ws.send(orjson.dumps(payload).decode())
        if i + 1 == voiced_end:
            speech_end = time.perf_counter() + FRAME_MS / 1000
    done = await asyncio.wait_for(reader, 30)
    assert done["status"] == "completed", done
    assert first_audio is not None
    meta = done["metadata"]
    marks, ttfb = meta["since_speech_end_ms"], meta["ttfb_ms"]
    # From the LLM's first token to the first chunk's TTS request: the model writing its first
    # sentence (20 ms a token here), which server_ms counts as Patchbay's.
    writing = marks["tts_first_byte"] - ttfb["tts"] - marks["llm_first_token"]
    return {
        "client": (first_audio - speech_end) * 1000,
        "server": meta["v2v_ms"],
        "patchbay": meta["server_ms"],
        "writing": writing,
        "own": meta["server_ms"] - writing,
        "tts": ttfb["tts"],
        "stt": ttfb["stt"],
        "provider": meta["tts_provider"],
        "stt_route": meta.get("stt_route"),
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main_async(turns: int, stt: str = "http") -> dict[str, Any]:
    from server.app import create_app
    from server.settings import Settings
    from tests.serving import uvicorn_in_loop

    llm_port, eleven_port = free_port(), free_port()
    context = multiprocessing.get_context("spawn")
    emulators = [
        context.Process(target=serve_emulator, args=(name, port), daemon=True)
        for name, port in (("llm", llm_port), ("eleven", eleven_port))
    ]
    for process in emulators:
        process.start()
    await wait_for_ports(llm_port, eleven_port)
    frames, voiced_end = question_frames()
    llm_url, eleven_url = f"http://127.0.0.1:{llm_port}", f"http://127.0.0.1:{eleven_port}"
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(
            data_dir=Path(data),
            master_key=MASTER_KEY,
            allow_private_base_urls=True,
            allow_plain_http_base_urls=True,
            api_key_rate_limit="off",
            voice_silence_ms=SILENCE_MS,
            log_level="WARNING",
        )
        services, key = await set_up(settings, llm_url + "/v1", eleven_url, STT_MODELS[stt])
        app = create_app(settings, services=services)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", access_log=False
        )
        results: dict[str, list[dict[str, Any]]] = {f"{r} {m}": [] for r, m in CASES}
        async with uvicorn_in_loop(config), contextlib.AsyncExitStack() as stack:
            url = f"ws://127.0.0.1:{config.port}/v1/realtime?model=default"
            sessions = {}
            for reply in REPLIES:
                ws = await stack.enter_async_context(
                    websockets.connect(url, additional_headers={"authorization": f"Bearer {key}"})
                )
                vad = {"type": "server_vad", "silence_duration_ms": SILENCE_MS}
                # The LLM emulator answers by the marker in the instructions.
                session = {"type": "realtime", "instructions": f"[reply:{reply}]"}
                session["audio"] = {"input": {"turn_detection": vad}}
                await ws.send(json.dumps({"type": "session.update", "session": session}))
                sessions[reply] = ws
            for n in range(len(CASES) * (turns + 1)):
                reply, mode = CASES[n % len(CASES)]
                services.voice.speech.streaming = mode == "streamed"
                result = await turn(sessions[reply], frames, voiced_end)
                if n >= len(CASES):
                    results[f"{reply} {mode}"].append(result)
        await services.aclose()
    for process in emulators:
        process.terminate()
    return summarise(results)


def answer(body: Any) -> Scenario:
    """The reply the session's instructions ask for (`[reply:long]`), at the LLM's pace."""
    reply = "long" if "[reply:long]" in json.dumps(body.get("messages", [])) else "short"
    return Scenario(text=REPLIES[reply], first_byte_delay=LLM_TTFT_S, chunk_delay=WORD_S)


def serve_emulator(name: str, port: int) -> None:
    """One emulator in a process of its own, so its timing does not share Patchbay's GIL."""
    app: Any
    if name == "llm":
        app = OpenAIEmulator("openai", api_key=LLM_KEY, models=("gpt-4o-mini",), responder=answer)
    else:
        app = TimedElevenLabs().app
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False, lifespan="off")


async def wait_for_ports(*ports: int) -> None:
    for port in ports:
        for _ in range(300):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)  # start-up poll of the emulator processes
                continue
            writer.close()
            break


SERVED = "elevenlabs:default"


def summarise(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Figures over the turns ElevenLabs spoke: a turn whose STT or TTS failed over to the
    built-in engines (a provider cooled down, e.g. a Scribe timeout under load) is counted
    in `fell_back`, not measured."""
    out: dict[str, Any] = {}
    for mode, all_rows in results.items():
        rows = [r for r in all_rows if r["provider"] == SERVED]
        out[mode] = {
            "turns": len(rows),
            "fell_back": len(all_rows) - len(rows),
            "tts_provider": sorted({r["provider"] for r in rows}),
            "rows": all_rows,
        }
        for name in ("client", "server", "patchbay", "writing", "own", "tts", "stt"):
            values = [float(r[name]) for r in rows if r[name] is not None]
            out[mode][name] = {
                "p50": round(pct(values, 0.5), 1),
                "p95": round(pct(values, 0.95), 1),
                "mean": round(statistics.fmean(values), 1),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=20, help="measured turns per mode (default 20)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--stt", choices=sorted(STT_MODELS), default="http", help="HTTP Scribe or Scribe v2 Realtime"
    )
    args = parser.parse_args()
    figures = asyncio.run(main_async(args.turns, args.stt))
    print(
        f"STT {STT_MODELS[args.stt]}; provider timings: STT {STT_S * 1000:.0f} ms (realtime: {STT_COMMIT_S * 1000:.0f} ms after the commit), LLM TTFT {LLM_TTFT_S * 1000:.0f} ms + {WORD_S * 1000:.0f} ms/word, TTS first byte {TTS_FIRST_BYTE_S * 1000:.0f} ms; endpointing {SILENCE_MS} ms"
    )
    columns = ("client", "server", "patchbay", "writing", "own", "tts", "stt")
    print(f"{'reply, mode':<19} {'turns':>5} " + " ".join(f"{c + ' p50/p95':>17}" for c in columns))
    for case, f in figures.items():
        cells = " ".join(f"{f[c]['p50']:>8.1f}/{f[c]['p95']:<8.1f}" for c in columns)
        print(f"{case:<19} {f['turns']:>5} {cells}  (fell back: {f['fell_back']})")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
