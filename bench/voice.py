"""Concurrent realtime voice sessions against a real Patchbay, in real time.

Processes: Patchbay, run by `server.serve.run` exactly as `patchbay serve --workers W` runs
it (uvicorn, uvloop, httptools, the sans-I/O WebSocket protocol without compression, W worker
processes on one port, one SQLite database), with a factory that swaps the STT and TTS for the
in-tree fakes (instant transcript, a 24 kHz tone); the OpenAI emulator as the LLM upstream
(`fast=True`); the callers (`--callers` processes, default 1, a fresh set per level); and this
one, which coordinates and reads each worker's figures from a side port of its own. Each
caller opens a session (server VAD, 500 ms endpointing) and streams a spoken question
(espeak-ng, 24 kHz PCM16) plus 1.2 s of silence, in pre-encoded 20 ms frames paced by one clock
per caller process, over and over, reading the replies. Every frame carries its send slot (the
caller's monotonic clock, which is the server's too) in its `event_id`.

Reported per level of N sessions:
- server-added latency per turn (`response.metadata.server_ms`: end of speech as detected,
  i.e. after the endpointing silence, to the first audio delta handed to the socket, minus
  STT, LLM time-to-first-token and TTS time-to-first-byte), p50 / p95 / max;
- frame delay: how long after its 20 ms slot each frame reached the session (measured in
  the server: caller scheduling, loopback and the server's queueing together), p99 and max,
  and the late frames, those over 40 ms; the event loops' worst lag on a 10 ms timer;
- Patchbay's own CPU (user/system, cyclic GC, per session and per frame, all workers) and
  resident memory, the callers' CPU apart from it, and how the sessions spread over workers.
The capacity figure is the largest N with no late frame; the goal is also p95 under 10 ms.

Run `.venv/bin/python bench/voice.py --help`. Defaults: N = 50 100 200 300, 15 s a level,
one worker. `--workers 1 2` measures both in one run; `--chart FILE.png` draws the figures
(matplotlib, from the `bench` extra); `--json FILE` keeps them. Knobs for experiments:
`BENCH_SILENT=1` streams silence only (no turns: the per-frame path alone),
`BENCH_PROFILE=/tmp/p` writes each worker's cProfile of the last level to `/tmp/p.<pid>`,
`BENCH_VERBOSE=1` prints every turn's metadata.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing
import os
import random
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import orjson
import websockets

from tests.emulators.harness import free_port

FRAME_MS = 20
LATE_MS = 40.0
GOAL_P95_MS = 10.0
ARRIVALS = 100.0
"""New sessions a second, per caller process, while a level's sessions connect."""
PHASES = 4
QUESTION = "What time does the pharmacy close on Sunday?"
TRANSCRIPT = "what time does the pharmacy close on sunday"
LLM_KEY = "sk-bench-0123456789abcdef"
MASTER_KEY = "v1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="
STAMP = '{"event_id":"bench-'
"""Every caller frame starts so; the send slot follows, then the rest of the append event."""


# --- Inside each Patchbay worker ------------------------------------------------------------


class WorkerProbe:
    """One worker's figures: frame delay (as frames reach the session), loop lag, CPU, memory.

    Served on a side port of the worker's own (the main port is shared by all workers, so a
    request there could land on any of them); the port is written to `<stats dir>/<pid>.port`.
    """

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.delays = [0] * 1001  # one bucket per ms; the last holds everything beyond
        self.frames = 0
        self.late = 0
        self.delay_max = 0.0
        self.lag_max = 0.0
        self.lag: list[float] = []
        self.gc = GCTimer()
        self.profiler: Any = None
        self._tasks: list[asyncio.Task[None]] = []

    def reset(self) -> None:
        self.delays = [0] * 1001
        self.frames = self.late = 0
        self.delay_max = self.lag_max = 0.0
        self.lag = []
        self.gc.longest = 0.0

    def frame(self, delay_ms: float) -> None:
        self.frames += 1
        self.delays[min(int(delay_ms), 1000)] += 1
        if delay_ms > LATE_MS:
            self.late += 1
        if delay_ms > self.delay_max:
            self.delay_max = delay_ms

    def instrument(self) -> None:
        """Time each frame as the connection hands it to the session (bench-only wrapper)."""
        from server.realtime.connection import RealtimeConnection

        handle = RealtimeConnection.handle
        probe, skip, clock = self, len(STAMP), time.monotonic

        def timed(conn: RealtimeConnection, text: str) -> None:
            if text.startswith(STAMP):
                probe.frame((clock() - float(text[skip : text.index('"', skip)])) * 1000)
            handle(conn, text)

        RealtimeConnection.handle = timed  # type: ignore[method-assign]

    def start(self, stats_dir: Path) -> None:
        if os.environ.get("BENCH_PROFILE"):
            import cProfile

            self.profiler = cProfile.Profile()
            self.profiler.enable()
        self._tasks = [
            asyncio.ensure_future(self._monitor()),
            asyncio.ensure_future(self._serve_stats(stats_dir)),
        ]

    async def _monitor(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            late = (loop.time() - before - 0.01) * 1000
            self.lag_max = max(self.lag_max, late)
            self.lag.append(late)

    def figures(self) -> dict[str, Any]:
        times = os.times()
        lag = sorted(self.lag)
        return {
            "pid": os.getpid(),
            "cpu_s": times.user + times.system,
            "sys_s": times.system,
            "gc_s": self.gc.total,
            "gc_max_ms": self.gc.longest * 1000,
            "gc_full": self.gc.full,
            "rss_mb": _rss_mb(),
            "lag_max_ms": self.lag_max,
            "lag_p99_ms": lag[int(len(lag) * 0.99)] if lag else 0.0,
            "frames": self.frames,
            "late": self.late,
            "delay_max_ms": self.delay_max,
            "delays": self.delays,
            "live_sessions": self.runtime.sessions.total,
        }

    async def _serve_stats(self, stats_dir: Path) -> None:
        import uvicorn
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def stats(request: Request) -> JSONResponse:
            body = self.figures()
            if request.method == "POST":
                self.reset()
                if self.profiler is not None:
                    # One profile per level, steady state only.
                    self.profiler.disable()
                    self.profiler.clear()
                    self.profiler.enable()
            dump = request.query_params.get("dump")
            if self.profiler is not None and dump:
                self.profiler.dump_stats(f"{dump}.{os.getpid()}")  # also disables it
            return JSONResponse(body)

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        app = Starlette(routes=[Route("/stats", stats, methods=["GET", "POST"])])
        server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
        # Written whole, then renamed: the coordinator never reads half a file.
        part = stats_dir / f"{os.getpid()}.part"
        part.write_text(str(sock.getsockname()[1]))
        part.replace(stats_dir / f"{os.getpid()}.port")
        await server.serve(sockets=[sock])


def bench_app() -> Any:
    """The uvicorn factory each worker runs: Patchbay's app with fake built-in STT/TTS (so every
    transcript and sentence still goes through the routed speech path: plan, runner, usage) and a probe."""
    from routing.speech import BuiltIn
    from server.app import create_app
    from server.logs import configure_logging
    from server.services import Overrides, Services
    from server.settings import Settings
    from tests.voice.fakes import FakeSTT, FakeTTS

    settings = Settings()
    configure_logging(settings.log_level)
    tts = FakeTTS("internal:espeak", sample_rate=24_000, chunks=2, chunk_ms=60)
    builtin = BuiltIn(stt=FakeSTT("internal:whisper", text=TRANSCRIPT), tts=tts)
    services = Services.build(settings, overrides=Overrides(internal_engines=builtin))
    probe = WorkerProbe(services.voice)
    probe.instrument()
    app = create_app(settings, services=services, freeze_gc=True)
    probe.start(Path(os.environ["BENCH_STATS_DIR"]))
    app.state.bench_probe = probe  # keeps the probe's tasks referenced
    return app


class GCTimer:
    """Time in the cyclic garbage collector: in all, and the longest pause (a full collection
    of a large heap stops the event loop for all of it)."""

    def __init__(self) -> None:
        import gc

        self.total = 0.0
        self.longest = 0.0
        self.full = 0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        spent = time.perf_counter() - self._started
        self.total += spent
        self.longest = max(self.longest, spent)
        self.full += info.get("generation") == 2


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# --- Processes around it ----------------------------------------------------------------------


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


def _environment(data_dir: Path, port: int, workers: int) -> dict[str, str]:
    return {
        "PATCHBAY_DATA_DIR": str(data_dir),
        "PATCHBAY_HOST": "127.0.0.1",
        "PATCHBAY_PORT": str(port),
        "PATCHBAY_WORKERS": str(workers),
        "PATCHBAY_MASTER_KEY": MASTER_KEY,
        "PATCHBAY_ALLOW_PRIVATE_BASE_URLS": "true",
        "PATCHBAY_ALLOW_PLAIN_HTTP_BASE_URLS": "true",
        "PATCHBAY_LOG_LEVEL": "WARNING",
        "PATCHBAY_API_KEY_RATE_LIMIT": "off",
        "PATCHBAY_VOICE_MAX_SESSIONS_PER_KEY": "100000",
        "BENCH_STATS_DIR": str(data_dir / "stats"),
    }


async def _set_up(llm_port: int) -> str:
    """Migrate, create the org, its LLM connection and chain; return a server API key."""
    from providers.vault.secret import Secret
    from server import accounts
    from server.services import Services
    from server.settings import Settings

    services = Services.build(Settings())
    try:
        await services.db.upgrade()
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
            return (await accounts.create_api_key(s, org.id, name="bench")).key
    finally:
        await services.aclose()


def _serve_patchbay(environment: dict[str, str]) -> None:
    os.environ.update(environment)
    from server.logs import configure_logging
    from server.serve import run
    from server.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level)
    run(settings, app="bench.voice:bench_app")


def frames() -> list[bytes]:
    """One turn of append events without their stamp: the question, then 1.2 s of silence."""
    from tests.voice.speech import silence, speak
    from voice.audio import resample

    if os.environ.get("BENCH_SILENT"):
        # Silence only: no turns, so the server's cost is the per-frame path alone.
        pcm = resample(silence(4200), 16_000, 24_000)
    else:
        pcm = resample(speak(QUESTION) + silence(1200), 16_000, 24_000)
    step = 24_000 * 2 * FRAME_MS // 1000
    return [
        b'","type":"input_audio_buffer.append","audio":"' + base64.b64encode(pcm[i : i + step]) + b'"}'
        for i in range(0, len(pcm) - step + 1, step)
    ]


def _text_frame(payload: bytes) -> bytes:
    """One final text frame as a client sends it, masked with the all-zero key.

    RFC 6455 lets a client pick any masking key; zero leaves the payload as it is, so the
    callers skip the XOR pass `websockets` would make over every byte. The server unmasks as
    it would any frame. The callers share the cores with the server: every microsecond they
    spend is one the server does not get (with `websockets.send` they took about a quarter
    of a core at N=300).
    """
    size = len(payload)
    if size < 126:
        header = bytes((0x81, 0x80 | size))
    elif size < 65536:
        header = bytes((0x81, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 0x80 | 127)) + size.to_bytes(8, "big")
    return header + b"\0\0\0\0" + payload


class Caller:
    def __init__(self, ws: websockets.ClientConnection, offset: int) -> None:
        self.ws = ws
        # Frames go straight to the socket, past the connection's send path (nothing else
        # sends on it while it streams; replies are read through `ws` as usual).
        self.transport: asyncio.WriteTransport = ws.transport
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


def _callers(n: int, seed: int, url: str, key: str, turn: list[bytes], control: Connection) -> None:
    import uvloop

    uvloop.run(_call(n, seed, url, key, turn, control))


async def _call(n: int, seed: int, url: str, key: str, turn: list[bytes], control: Connection) -> None:
    """One caller process: N sessions on one clock, each at its own offset in the turn.

    Callers are spread over 4 phases of the 20 ms frame (real callers are not in step; one
    burst of N messages would make every turn queue behind N frames). One task sends for all
    of them; N sleeping tasks would cost the callers more CPU than the server spends. The
    client offers permessage-deflate, as the openai SDK's does; `patchbay serve` declines it.
    """
    rng = random.Random(seed)
    headers = {"authorization": f"Bearer {key}"}
    # Calls arrive one after another, as real ones do (ARRIVALS a second), not in one burst:
    # a burst lands on whichever worker happens to be waiting in accept() at that moment.
    opened = time.monotonic()

    async def open_one(i: int) -> Caller:
        await asyncio.sleep(max(0.0, opened + i / ARRIVALS - time.monotonic()))
        ws = await websockets.connect(url, additional_headers=headers, max_size=None)
        return Caller(ws, rng.randrange(len(turn)))

    callers = await asyncio.gather(*(open_one(i) for i in range(n)))
    readers = [asyncio.ensure_future(c.read()) for c in callers]
    control.send("ready")
    start, seconds = control.recv()
    cpu_before = sum(os.times()[:2])
    sent = 0
    worst = 0.0
    phases = [callers[p::PHASES] for p in range(PHASES)]
    index = 0
    while (tick := start + index * FRAME_MS / 1000) < start + seconds:
        for phase, group in enumerate(phases):
            slot = tick + phase * FRAME_MS / 1000 / PHASES
            delay = slot - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            stamp = f"{STAMP}{slot:.6f}".encode()
            worst = max(worst, (time.monotonic() - slot) * 1000)
            for c in group:
                c.transport.write(_text_frame(stamp + turn[(index + c.offset) % len(turn)]))
                sent += 1
        index += 1
    cpu = sum(os.times()[:2]) - cpu_before
    control.recv()  # the server's figures are taken; now leave
    for c in callers:
        await c.ws.close()
    for reader in readers:
        reader.cancel()
    server_ms = [ms for c in callers for ms in c.server_ms]
    control.send({"server_ms": server_ms, "sent": sent, "worst": worst, "cpu_s": cpu})


def _split(n: int, parts: int) -> list[int]:
    return [n // parts + (i < n % parts) for i in range(parts) if n // parts + (i < n % parts)]


def _percentile(histogram: list[int], q: float) -> float:
    total = sum(histogram)
    if not total:
        return 0.0
    rank, seen = q * total, 0
    for ms, count in enumerate(histogram):
        seen += count
        if seen >= rank:
            return float(ms + 1)  # bucket ms covers [ms, ms + 1)
    return float(len(histogram))


@dataclass(frozen=True)
class Server:
    url: str
    key: str
    stats: list[httpx.AsyncClient]
    """One client per worker, on its side port."""


async def level(n: int, server: Server, turn: list[bytes], *, seconds: float, callers: int) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    procs, pipes = [], []
    for i, share in enumerate(_split(n, callers)):
        mine, theirs = context.Pipe()
        proc = context.Process(
            target=_callers, args=(share, n * 100 + i, server.url, server.key, turn, theirs), daemon=True
        )
        proc.start()
        procs.append(proc)
        pipes.append(mine)
    loop = asyncio.get_running_loop()
    for pipe in pipes:
        await loop.run_in_executor(None, pipe.recv)
    before = [(await w.post("/stats")).json() for w in server.stats]
    start = time.monotonic() + 0.2
    for pipe in pipes:
        pipe.send((start, seconds))
    await asyncio.sleep(start + seconds - time.monotonic())
    dump = os.environ.get("BENCH_PROFILE")
    after = [(await w.get("/stats", params={"dump": dump} if dump else None)).json() for w in server.stats]
    results = []
    for pipe in pipes:
        pipe.send("stop")
        results.append(await loop.run_in_executor(None, pipe.recv))
    for proc in procs:
        proc.join(10)

    def spent(field: str) -> float:
        return sum(a[field] - b[field] for a, b in zip(after, before, strict=True)) / seconds

    server_ms = sorted(ms for r in results for ms in r["server_ms"])
    delays = [sum(bucket) for bucket in zip(*(a["delays"] for a in after), strict=True)]
    frames = sum(a["frames"] for a in after)
    cpu = spent("cpu_s")
    rss = sum(a["rss_mb"] for a in after)
    return {
        "n": n,
        "workers": len(after),
        "turns": len(server_ms),
        "p50": statistics.median(server_ms) if server_ms else None,
        "p95": server_ms[int(len(server_ms) * 0.95)] if server_ms else None,
        "max": server_ms[-1] if server_ms else None,
        "frames": frames,
        "sent": sum(r["sent"] for r in results),
        "late": sum(a["late"] for a in after),
        "delay_p99": _percentile(delays, 0.99),
        "delay_max": max(a["delay_max_ms"] for a in after),
        "caller_worst": max(r["worst"] for r in results),
        "lag_max": max(a["lag_max_ms"] for a in after),
        "sessions": [a["live_sessions"] for a in after],
        "server_cpu_pct": 100 * cpu,
        "server_sys_pct": 100 * spent("sys_s"),
        "gc_pct": 100 * spent("gc_s"),
        "gc_max": max(a["gc_max_ms"] for a in after),
        "gc_full": sum(a["gc_full"] - b["gc_full"] for a, b in zip(after, before, strict=True)),
        "cpu_pct_per_session": 100 * cpu / n,
        "us_per_frame": 1e6 * cpu * FRAME_MS / 1000 / n,
        "caller_cpu_pct": 100 * sum(r["cpu_s"] for r in results) / seconds,
        "rss_mb": rss,
        "rss_per_session_kb": 1024 * (rss - sum(b["rss_mb"] for b in before)) / n,
    }


HEADER = (
    f"{'W':>2} {'N':>5} {'turns':>6} {'srv p50':>8} {'srv p95':>8} {'srv max':>8} {'late':>5} {'frames':>8} "
    f"{'delay p99':>9} {'delay max':>9} {'loop max':>8} {'srv cpu%':>8} {'gc%':>4} {'gc max':>6} {'us/frm':>6} "
    f"{'callers%':>8} {'rss MB':>6} {'KB/ses':>6}  sessions/worker"
)


def _row(r: dict[str, Any]) -> str:
    def ms(value: float | None) -> str:
        return "nan" if value is None else f"{value:.2f}"

    return (
        f"{r['workers']:2d} {r['n']:5d} {r['turns']:6d} {ms(r['p50']):>8} {ms(r['p95']):>8} {ms(r['max']):>8} "
        f"{r['late']:5d} {r['frames']:8d} {r['delay_p99']:9.0f} {r['delay_max']:9.1f} {r['lag_max']:8.1f} "
        f"{r['server_cpu_pct']:8.1f} {r['gc_pct']:4.1f} {r['gc_max']:6.1f} {r['us_per_frame']:6.0f} {r['caller_cpu_pct']:8.1f} "
        f"{r['rss_mb']:6.0f} {r['rss_per_session_kb']:6.0f}  {'/'.join(str(s) for s in r['sessions'])}"
    )


def _stats_ports(stats_dir: Path, workers: int) -> list[int]:
    """The side ports of the W workers, once each has written its own."""
    deadline = time.monotonic() + 60
    while len(found := sorted(stats_dir.glob("*.port"))) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(found)} of {workers} workers started within 60 s")
        time.sleep(0.1)
    return [int(p.read_text()) for p in found]


async def _measure(
    url: str, key: str, stats_dir: Path, workers: int, args: argparse.Namespace, turn: list[bytes]
) -> list[dict[str, Any]]:
    ports = await asyncio.to_thread(_stats_ports, stats_dir, workers)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=f"http://127.0.0.1:{p}", timeout=30))
            for p in ports
        ]
        server = Server(url, key, clients)
        # Warm-up, not reported: first connections load the org's routing, open the upstream
        # pool and import lazily-loaded modules, in every worker.
        await level(20 * workers, server, turn, seconds=5.0, callers=args.callers)
        rows = []
        for n in args.levels:
            for _ in range(args.repeat):
                row = await level(n, server, turn, seconds=args.seconds, callers=args.callers)
                print(_row(row), flush=True)
                rows.append(row)
        return rows


@dataclass(frozen=True)
class RunningPatchbay:
    port: int
    key: str
    data_dir: Path
    pid: int


@contextlib.contextmanager
def patchbay_running(workers: int, llm_port: int) -> Iterator[RunningPatchbay]:
    """Patchbay with W workers on a fresh database whose org routes to the LLM emulator at
    `llm_port`; stopped (SIGTERM) on exit. Shared by this bench and bench/soak.py."""
    context = multiprocessing.get_context("spawn")
    port = free_port()
    while port == llm_port:  # the emulator may not have bound its port yet
        port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        environment = _environment(data_dir, port, workers)
        (data_dir / "stats").mkdir()
        saved = dict(os.environ)
        os.environ.update(environment)
        try:
            key = asyncio.run(_set_up(llm_port))
        finally:
            os.environ.clear()
            os.environ.update(saved)
        # Not a daemon: uvicorn's supervisor starts the workers as its children.
        server = context.Process(target=_serve_patchbay, args=(environment,))
        server.start()
        try:
            yield RunningPatchbay(port, key, data_dir, server.pid or 0)
        finally:
            server.terminate()  # SIGTERM: uvicorn's supervisor stops its workers
            server.join(15)


def run_workers(
    workers: int, args: argparse.Namespace, turn: list[bytes], llm_port: int
) -> list[dict[str, Any]]:
    """Start Patchbay with W workers on a fresh database, measure every level, stop it."""
    with patchbay_running(workers, llm_port) as running:
        url = f"ws://127.0.0.1:{running.port}/v1/realtime?model=default"
        return asyncio.run(_measure(url, running.key, running.data_dir / "stats", workers, args, turn))


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no chart: matplotlib is not installed (pip install -e '.[bench]')")
        return
    fig, (latency, delay) = plt.subplots(1, 2, figsize=(11, 4.2))
    for index, workers in enumerate(sorted({r["workers"] for r in rows})):
        mine = [r for r in rows if r["workers"] == workers and r["p95"] is not None]
        label = f"{workers} worker{'s' if workers > 1 else ''}"
        levels = sorted({r["n"] for r in mine})
        for axis, field, style, name in (
            (latency, "p95", "o-", "p95"),
            (latency, "p50", "x--", "p50"),
            (delay, "delay_max", "o-", "max"),
        ):
            colour = f"C{2 * index + (field == 'p50')}"
            # Every run as a point, the line through each level's median run.
            axis.plot([r["n"] for r in mine], [r[field] for r in mine], style[0], color=colour, alpha=0.5)
            medians = [statistics.median(r[field] for r in mine if r["n"] == n) for n in levels]
            axis.plot(levels, medians, style, color=colour, label=f"{name}, {label}")
    latency.axhline(GOAL_P95_MS, color="grey", linestyle=":", label=f"goal: p95 < {GOAL_P95_MS:.0f} ms")
    delay.axhline(LATE_MS, color="grey", linestyle=":", label=f"late: > {LATE_MS:.0f} ms")
    latency.set(xlabel="concurrent sessions", ylabel="server-added ms per turn", title="Server-added latency")
    delay.set(xlabel="concurrent sessions", ylabel="ms after its slot", title="Frame delay (worst frame)")
    for axis in (latency, delay):
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle("Realtime voice sessions on 2 cores (bench/voice.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"chart: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="See the module docstring for details."
    )
    parser.add_argument("levels", nargs="*", type=int, default=[50, 100, 200, 300], help="session counts N")
    parser.add_argument("--workers", nargs="+", type=int, default=[1], help="Patchbay worker counts to run")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per level")
    parser.add_argument("--repeat", type=int, default=1, help="runs per level")
    parser.add_argument("--callers", type=int, default=1, help="caller processes")
    parser.add_argument("--chart", type=Path, help="write a PNG chart of the figures")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    args = parser.parse_args()
    turn = frames()
    print(
        f"{args.seconds:.0f} s per level, 20 ms frames, turn = {len(turn) * FRAME_MS / 1000:.1f} s of audio, "
        f"{args.callers} caller process(es), {os.cpu_count()} cores"
    )
    print(HEADER)
    context = multiprocessing.get_context("spawn")
    llm_port = free_port()
    llm = context.Process(target=_serve_llm, args=(llm_port,), daemon=True)
    llm.start()
    rows: list[dict[str, Any]] = []
    try:
        for workers in args.workers:
            rows += run_workers(workers, args, turn, llm_port)
    finally:
        llm.terminate()
        llm.join(5)
    for workers in args.workers:
        mine = [r for r in rows if r["workers"] == workers]
        ok = {r["n"] for r in mine} - {r["n"] for r in mine if r["late"]}
        goal = ok - {r["n"] for r in mine if r["p95"] is None or r["p95"] >= GOAL_P95_MS}
        print(
            f"{workers} worker(s): largest N with no frame later than {LATE_MS:.0f} ms: {max(ok, default=0)}; "
            f"also with p95 under {GOAL_P95_MS:.0f} ms: {max(goal, default=0)}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if args.chart:
        chart(rows, args.chart)


if __name__ == "__main__":
    main()
