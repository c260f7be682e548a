"""Concurrent realtime voice sessions against a real Patchbay, in real time.

Processes: Patchbay (`create_app`, SQLite, the real router and `/v1/realtime`; W of them with
`BENCH_WORKERS=W`, each its own database and key, as independent replicas), the OpenAI
emulator as the LLM upstream (`fast=True`), the callers (one process per worker by default,
`BENCH_CALLER_PROCS` to choose; a fresh set per level), and this one, which coordinates and
reads each worker's stats. Each caller opens a session (server VAD, 500 ms endpointing) and
streams a spoken question (espeak-ng, 24 kHz PCM16) plus 1.2 s of silence, in pre-encoded
20 ms frames paced by one clock per caller process, over and over, reading the replies. STT
and TTS are the in-tree fakes (instant transcript, a 24 kHz tone), so provider time is the
LLM emulator's and is subtracted anyway.

Reported per level of N sessions:
- server-added latency per turn (`response.metadata.server_ms`: end of speech as detected,
  i.e. after the endpointing silence, to the first audio delta handed to the socket, minus
  STT, LLM time-to-first-token and TTS time-to-first-byte), p50 / p95 / max;
- late frames: frames a caller sent more than 40 ms after their slot (the callers' clock),
  and the Patchbay event loops' worst lag (a frame arriving then waits that long);
- Patchbay's own CPU (user/system, time in the cyclic GC, per session and per frame) and
  resident memory, and the callers' CPU apart from it.
The largest N with no late frame and a loop lag under 40 ms is the capacity figure.

Run: `.venv/bin/python bench/voice.py [N ...]` (default 50 100 200 300; 15 s per level).
On a 2-core box the callers and the LLM emulator share the cores with the server.
`BENCH_WS=websockets` picks uvicorn's legacy WebSocket protocol (default `auto`, the sans-I/O
one `patchbay serve` uses); `BENCH_DEFLATE=1` lets the server negotiate permessage-deflate
(`patchbay serve` does not); `BENCH_CLIENT_DEFLATE=0` stops the callers offering it;
`BENCH_SILENT=1` streams silence (no turns: the per-frame path alone);
`BENCH_PROFILE=/tmp/voice.prof` writes each worker's cProfile of the last level to
`/tmp/voice.prof.<worker>`; `BENCH_VERBOSE=1` prints every turn's metadata.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import orjson
import websockets

from tests.emulators.harness import free_port

SECONDS = 15.0
FRAME_MS = 20
LATE_MS = 40.0
PHASES = 4
QUESTION = "What time does the pharmacy close on Sunday?"
LLM_KEY = "sk-bench-0123456789abcdef"
MASTER_KEY = "v1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="


def _serve_llm(port: int) -> None:
    import uvicorn

    from tests.emulators.openai import OpenAIEmulator, Scenario

    app = OpenAIEmulator(
        "openai",
        api_key=LLM_KEY,
        models=("gpt-4o-mini",),
        fast=True,
        default=Scenario(text="It closes at six. Anything else?"),
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False, lifespan="off")


def _serve_patchbay(port: int, llm_port: int, data_dir: str, ready: Connection) -> None:
    import uvloop  # as `patchbay serve` runs

    Path(data_dir).mkdir(parents=True, exist_ok=True)
    uvloop.run(_patchbay(port, llm_port, Path(data_dir), ready))


async def _patchbay(port: int, llm_port: int, data_dir: Path, ready: Connection) -> None:
    import uvicorn
    from fastapi.responses import JSONResponse
    from starlette.routing import Route

    from providers.vault.secret import Secret
    from server import accounts
    from server.app import create_app
    from server.db import Database
    from server.realtime.runtime import VoiceRuntime
    from server.services import Services
    from server.settings import Settings
    from tests.voice.fakes import FakeSTT, FakeTTS

    settings = Settings(
        data_dir=data_dir,
        allow_private_base_urls=True,
        allow_plain_http_base_urls=True,
        master_key=MASTER_KEY,
        log_level="WARNING",
        voice_max_sessions_per_key=100_000,
    )
    db = Database(settings.resolved_database_url)
    await db.upgrade()
    services = Services.build(settings, db)
    services.attach_gateway(rate_limit=None)
    async with services.db.session() as s:
        org = await accounts.create_org(s, "Bench")
        await services.connections().create(
            s,
            org.id,
            provider="openai",
            name="main",
            base_url=f"http://127.0.0.1:{llm_port}/v1",
            key=Secret(LLM_KEY),
        )
        await services.agents().set_org_routing(s, org.id, chains={"chat": ["openai/gpt-4o-mini"]})
        key = (await accounts.create_api_key(s, org.id, name="bench")).key
    runtime = VoiceRuntime.from_settings(settings)
    tts = FakeTTS(sample_rate=24_000, chunks=2, chunk_ms=60)
    runtime.engines = lambda principal: (FakeSTT(text="what time does the pharmacy close on sunday"), tts)
    services.extras["voice"] = runtime

    lag = {"max_ms": 0.0, "samples": []}
    gc_time = _gc_timer()

    async def monitor() -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            late = (loop.time() - before - 0.01) * 1000
            lag["max_ms"] = max(lag["max_ms"], late)  # type: ignore[call-overload]
            lag["samples"].append(late)  # type: ignore[attr-defined]

    def cpu_seconds() -> float:
        times = os.times()
        return times.user + times.system

    def rss_mb() -> float:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    async def stats(request: Any) -> JSONResponse:
        samples: list[float] = sorted(lag["samples"])  # type: ignore[arg-type]
        body = {
            "cpu_s": cpu_seconds(),
            "sys_s": os.times().system,
            "gc_s": gc_time(),
            "rss_mb": rss_mb(),
            "lag_max_ms": lag["max_ms"],
            "lag_p99_ms": samples[int(len(samples) * 0.99)] if samples else 0.0,
            "live_sessions": runtime.sessions.total,
            "turns": runtime.stats.snapshot(),
        }
        if request.method == "POST":
            lag["max_ms"], lag["samples"] = 0.0, []
            if profiler is not None:
                # One profile per level, steady state only.
                profiler.disable()
                profiler.clear()
                profiler.enable()
        if profiler is not None and request.query_params.get("dump"):
            profiler.dump_stats(request.query_params["dump"])  # also disables it
        return JSONResponse(body)

    profiler = None
    if os.environ.get("BENCH_PROFILE"):
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()

    app = create_app(settings, services=services)
    app.router.routes.append(Route("/bench/stats", stats, methods=["GET", "POST"]))
    started = asyncio.Event()

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            started.set()

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="error",
        access_log=False,
        http="httptools",
        ws=os.environ.get("BENCH_WS", "auto"),
        ws_per_message_deflate=os.environ.get("BENCH_DEFLATE", "0") == "1",
    )
    server = Server(config)
    watcher = asyncio.ensure_future(monitor())
    serving = asyncio.ensure_future(server.serve())
    await started.wait()
    ready.send(key)
    await serving
    watcher.cancel()


def _gc_timer() -> Any:
    """Seconds spent in the cyclic garbage collector so far (a large heap makes it costly)."""
    import gc
    import time

    spent = [0.0, 0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            spent[1] = time.process_time()
        else:
            spent[0] += time.process_time() - spent[1]

    gc.callbacks.append(callback)
    return lambda: spent[0]


def frames() -> list[str]:
    """One turn of pre-encoded append events: the question, then 1.2 s of silence."""
    from tests.voice.speech import silence, speak
    from voice.audio import resample

    if os.environ.get("BENCH_SILENT"):
        # Silence only: no turns, so the server's cost is the per-frame path alone.
        pcm = resample(silence(4200), 16_000, 24_000)
    else:
        pcm = resample(speak(QUESTION) + silence(1200), 16_000, 24_000)
    step = 24_000 * 2 * FRAME_MS // 1000
    return [
        orjson.dumps(
            {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm[i : i + step]).decode()}
        ).decode()
        for i in range(0, len(pcm) - step + 1, step)
    ]


class Caller:
    def __init__(self, ws: websockets.ClientConnection, offset: int) -> None:
        self.ws = ws
        self.offset = offset
        self.server_ms: list[float] = []

    async def read(self) -> None:
        async for message in self.ws:
            if '"response.done"' in message[:60]:
                metadata = orjson.loads(message)["response"].get("metadata") or {}
                if metadata.get("server_ms") is not None:
                    self.server_ms.append(metadata["server_ms"])
                    if os.environ.get("BENCH_VERBOSE"):
                        print(metadata)


def _callers(n: int, seed: int, url: str, key: str, turn: list[str], control: Connection) -> None:
    import uvloop

    uvloop.run(_call(n, seed, url, key, turn, control))


async def _call(n: int, seed: int, url: str, key: str, turn: list[str], control: Connection) -> None:
    """One caller process: N sessions on one clock, each at its own offset in the turn.

    Callers are spread over 4 phases of the 20 ms frame (real callers are not in step; one
    burst of N messages would make every turn queue behind N frames). One task sends for all
    of them; N sleeping tasks would cost the callers more CPU than the server spends.
    """
    rng = random.Random(seed)
    headers = {"authorization": f"Bearer {key}"}
    connecting = asyncio.Semaphore(50)
    # A default client offers permessage-deflate (the openai SDK's does); BENCH_CLIENT_DEFLATE=0
    # does not, to measure the server with compression off whatever it allows.
    compression = "deflate" if os.environ.get("BENCH_CLIENT_DEFLATE", "1") == "1" else None

    async def open_one() -> Caller:
        async with connecting:
            ws = await websockets.connect(
                url, additional_headers=headers, max_size=None, compression=compression
            )
        return Caller(ws, rng.randrange(len(turn)))

    callers = await asyncio.gather(*(open_one() for _ in range(n)))
    negotiated = {
        str(c.ws.response.headers.get("sec-websocket-extensions")) for c in callers if c.ws.response
    }
    readers = [asyncio.ensure_future(c.read()) for c in callers]
    control.send(("ready", sorted(negotiated)))
    start, seconds = control.recv()
    cpu_before = sum(os.times()[:2])
    frames = late = 0
    worst = 0.0
    phases = [callers[p::PHASES] for p in range(PHASES)]
    index = 0
    while (tick := start + index * FRAME_MS / 1000) < start + seconds:
        for phase, group in enumerate(phases):
            slot = tick + phase * FRAME_MS / 1000 / PHASES
            delay = slot - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            for c in group:
                lateness = (time.monotonic() - slot) * 1000
                worst = max(worst, lateness)
                late += lateness > LATE_MS
                await c.ws.send(turn[(index + c.offset) % len(turn)])
                frames += 1
        index += 1
    cpu = sum(os.times()[:2]) - cpu_before
    control.recv()  # the server's stats are taken; now leave
    for c in callers:
        await c.ws.close()
    for reader in readers:
        reader.cancel()
    server_ms = [ms for c in callers for ms in c.server_ms]
    control.send({"server_ms": server_ms, "late": late, "frames": frames, "worst": worst, "cpu_s": cpu})


def _split(n: int, parts: int) -> list[int]:
    return [n // parts + (i < n % parts) for i in range(parts) if n // parts + (i < n % parts)]


@dataclass(frozen=True)
class Worker:
    """One Patchbay process: its WebSocket URL, stats client and API key."""

    url: str
    http: httpx.AsyncClient
    key: str


async def level(
    n: int, workers: list[Worker], turn: list[str], *, seconds: float = SECONDS
) -> dict[str, Any]:
    """N sessions over BENCH_CALLER_PROCS caller processes (default: one per Patchbay
    worker); caller process i talks to worker i mod W, so sessions split evenly."""
    context = multiprocessing.get_context("spawn")
    procs, pipes = [], []
    parts = max(int(os.environ.get("BENCH_CALLER_PROCS", "0")) or len(workers), 1)
    for i, share in enumerate(_split(n, parts)):
        worker = workers[i % len(workers)]
        mine, theirs = context.Pipe()
        proc = context.Process(
            target=_callers, args=(share, n * 100 + i, worker.url, worker.key, turn, theirs), daemon=True
        )
        proc.start()
        procs.append(proc)
        pipes.append(mine)
    loop = asyncio.get_running_loop()
    negotiated: set[str] = set()
    for pipe in pipes:
        _, extensions = await loop.run_in_executor(None, pipe.recv)
        negotiated.update(extensions)
    for w in workers:
        await w.http.post("/bench/stats")
    before = [(await w.http.get("/bench/stats")).json() for w in workers]
    start = time.monotonic() + 0.2
    for pipe in pipes:
        pipe.send((start, seconds))
    await asyncio.sleep(start + seconds - time.monotonic())
    dump = os.environ.get("BENCH_PROFILE")
    after = [
        (await w.http.get("/bench/stats", params={"dump": f"{dump}.{i}"} if dump else None)).json()
        for i, w in enumerate(workers)
    ]
    results = []
    for pipe in pipes:
        pipe.send("stop")
        results.append(await loop.run_in_executor(None, pipe.recv))
    for proc in procs:
        proc.join(10)

    def spent(field: str) -> float:
        return sum(a[field] - b[field] for a, b in zip(after, before, strict=True)) / seconds

    server_ms = sorted(ms for r in results for ms in r["server_ms"])
    cpu = spent("cpu_s")
    rss = sum(a["rss_mb"] for a in after)
    return {
        "n": n,
        "turns": len(server_ms),
        "p50": statistics.median(server_ms) if server_ms else float("nan"),
        "p95": server_ms[int(len(server_ms) * 0.95)] if server_ms else float("nan"),
        "max": server_ms[-1] if server_ms else float("nan"),
        "late": sum(r["late"] for r in results),
        "frames": sum(r["frames"] for r in results),
        "client_worst": max(r["worst"] for r in results),
        "lag_max": max(a["lag_max_ms"] for a in after),
        "lag_p99": max(a["lag_p99_ms"] for a in after),
        "server_cpu_pct": 100 * cpu,
        "server_sys_pct": 100 * spent("sys_s"),
        "gc_pct": 100 * spent("gc_s"),
        "cpu_pct_per_session": 100 * cpu / n,
        "caller_cpu_pct": 100 * sum(r["cpu_s"] for r in results) / seconds,
        "us_per_frame": 1e6 * cpu * FRAME_MS / 1000 / n,
        "rss_mb": rss,
        "rss_per_session_kb": 1024 * (rss - sum(b["rss_mb"] for b in before)) / n,
        "extensions": sorted(negotiated),
    }


async def run(levels: list[int], ports: list[int], keys: list[str]) -> None:
    turn = frames()
    print(
        f"{SECONDS:.0f} s per level, 20 ms frames, turn = {len(turn) * FRAME_MS / 1000:.1f} s of audio, "
        f"ws={os.environ.get('BENCH_WS', 'auto')} server deflate={os.environ.get('BENCH_DEFLATE', '0')} "
        f"patchbay workers={len(ports)} caller procs={os.environ.get('BENCH_CALLER_PROCS', len(ports))}"
    )
    print(
        f"{'N':>5} {'turns':>6} {'srv p50':>8} {'srv p95':>8} {'srv max':>8} {'late':>6} {'frames':>8} "
        f"{'loop max':>9} {'loop p99':>9} {'srv cpu%/sys':>12} {'gc':>5} {'%/ses':>6} {'us/frm':>7} "
        f"{'call cpu%':>9} {'rss MB':>7} {'KB/ses':>7}"
    )
    capacity = 0
    async with contextlib.AsyncExitStack() as stack:
        workers = [
            Worker(
                f"ws://127.0.0.1:{port}/v1/realtime?model=default",
                await stack.enter_async_context(
                    httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
                ),
                key,
            )
            for port, key in zip(ports, keys, strict=True)
        ]
        # Warm-up, not reported: first connections load the org's routing, open the upstream
        # pool and import lazily-loaded modules.
        warm = await level(10 * len(workers), workers, turn, seconds=5.0)
        print(f"negotiated extensions: {warm['extensions']}")
        for n in levels:
            r = await level(n, workers, turn)
            print(
                f"{r['n']:5d} {r['turns']:6d} {r['p50']:8.2f} {r['p95']:8.2f} {r['max']:8.2f} {r['late']:6d} "
                f"{r['frames']:8d} {r['lag_max']:9.1f} {r['lag_p99']:9.1f} "
                f"{r['server_cpu_pct']:7.1f}/{r['server_sys_pct']:<4.0f} {r['gc_pct']:5.1f} "
                f"{r['cpu_pct_per_session']:6.2f} {r['us_per_frame']:7.0f} {r['caller_cpu_pct']:9.1f} "
                f"{r['rss_mb']:7.0f} {r['rss_per_session_kb']:7.0f}"
            )
            if r["late"] == 0 and r["lag_max"] < LATE_MS:
                capacity = n
    print(f"largest N with no frame later than {LATE_MS:.0f} ms: {capacity}")


def main() -> None:
    levels = [int(a) for a in sys.argv[1:]] or [50, 100, 200, 300]
    context = multiprocessing.get_context("spawn")
    count = int(os.environ.get("BENCH_WORKERS", "1"))
    llm_port = free_port()
    ports = [free_port() for _ in range(count)]
    with tempfile.TemporaryDirectory() as data_dir:
        llm = context.Process(target=_serve_llm, args=(llm_port,), daemon=True)
        llm.start()
        servers, pipes = [], []
        for i, port in enumerate(ports):
            # Independent replicas (own database, own key), as sticky sessions behind a
            # balancer would be: sessions share nothing across workers.
            receiving, sending = context.Pipe(duplex=False)
            server = context.Process(
                target=_serve_patchbay,
                args=(port, llm_port, str(Path(data_dir) / f"w{i}"), sending),
                daemon=True,
            )
            server.start()
            servers.append(server)
            pipes.append(receiving)
        try:
            keys = []
            for receiving in pipes:
                if not receiving.poll(60):
                    raise RuntimeError("patchbay did not start within 60 s")
                keys.append(receiving.recv())
            asyncio.run(run(levels, ports, keys))
        finally:
            for process in (*servers, llm):
                process.terminate()
            for process in (*servers, llm):
                process.join(5)


if __name__ == "__main__":
    main()
