"""Part of bench/voice.py: what runs inside each Patchbay worker under test. The uvicorn factory
(`bench_app`: Patchbay with fake built-in STT/TTS) and the probe that times every caller frame as
it reaches the session and serves the worker's figures (frame delay, loop lag, CPU, GC, memory)
on a side port of its own.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path
from typing import Any

from bench.voice_callers import STAMP, TWILIO_STAMP

LATE_MS = 40.0
"""A frame that reaches its session later than this after its slot is late."""
TRANSCRIPT = "what time does the pharmacy close on sunday"
LAG_BUCKETS = 10_000
"""Loop lag is counted in 0.1-ms buckets up to 1 s."""


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
        self.lag = [0] * (LAG_BUCKETS + 1)
        """Loop lag by 0.1-ms bucket (the last holds everything beyond): a list of every
        sample grew by 100 a second, 0.2 MB a minute, which a long soak read as the server's."""
        self.gc = GCTimer()
        self.profiler: Any = None
        self._tasks: list[asyncio.Task[None]] = []

    def reset(self) -> None:
        self.runtime.stats.clear()
        self.delays = [0] * 1001
        self.frames = self.late = 0
        self.delay_max = self.lag_max = 0.0
        self.lag = [0] * (LAG_BUCKETS + 1)
        self.gc.longest = 0.0

    def frame(self, delay_ms: float) -> None:
        self.frames += 1
        self.delays[min(int(delay_ms), 1000)] += 1
        if delay_ms > LATE_MS:
            self.late += 1
        if delay_ms > self.delay_max:
            self.delay_max = delay_ms

    def loop_lag(self, late_ms: float) -> None:
        self.lag_max = max(self.lag_max, late_ms)
        self.lag[min(int(late_ms * 10), LAG_BUCKETS)] += 1

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

        from server.realtime.twilio_bridge import TwilioBridge

        receive, twilio_skip = TwilioBridge.receive, len(TWILIO_STAMP)

        def timed_media(bridge: TwilioBridge, message: str | bytes) -> bool:
            if isinstance(message, str) and message.startswith(TWILIO_STAMP):
                sent = float(message[twilio_skip : message.index('"', twilio_skip)])
                probe.frame((clock() - sent) * 1000)
            return receive(bridge, message)

        TwilioBridge.receive = timed_media  # type: ignore[method-assign]

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
            self.loop_lag(late)

    def figures(self) -> dict[str, Any]:
        times = os.times()
        return {
            "pid": os.getpid(),
            "cpu_s": times.user + times.system,
            "sys_s": times.system,
            "gc_s": self.gc.total,
            "gc_max_ms": self.gc.longest * 1000,
            "gc_full": self.gc.full,
            "gc_collections": list(self.gc.by_generation),
            "rss_mb": _rss_mb(),
            "lag_max_ms": self.lag_max,
            "lag_p99_ms": percentile(self.lag, 0.99) / 10,
            "frames": self.frames,
            "late": self.late,
            "delay_max_ms": self.delay_max,
            "delays": self.delays,
            "live_sessions": self.runtime.sessions.total,
            # Each turn's server-added latency since the last reset (the window's last 2,048 at
            # most): a phone call has no `response.done` to carry it to its caller.
            "server_ms": self.runtime.stats.series("server_ms"),
            "turns": self.runtime.stats.turns,
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
            if request.query_params.get("census"):
                body = census(collect=bool(request.query_params.get("collect")))
            if request.query_params.get("garbage"):
                body = garbage()
            dump = request.query_params.get("dump")
            if self.profiler is not None and dump:
                self.profiler.dump_stats(f"{dump}.{os.getpid()}")  # also disables it
            return JSONResponse(body)

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        # Listening before the port is published: a coordinator that reads it at once finds its
        # connection queued until the server runs, not refused (a race the bench used to lose).
        sock.listen(16)
        app = Starlette(routes=[Route("/stats", stats, methods=["GET", "POST"])])
        server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
        # Written whole, then renamed: the coordinator never reads half a file.
        part = stats_dir / f"{os.getpid()}.part"
        part.write_text(str(sock.getsockname()[1]))
        part.replace(stats_dir / f"{os.getpid()}.port")
        await server.serve(sockets=[sock])


def census(top: int = 60, *, collect: bool = False) -> dict[str, Any]:
    """The objects the cyclic collector tracks in this worker, by type (outside the frozen
    start-up heap): what a full collection walks. `GET /stats?census=1` on the side port;
    `&collect=1` runs a full collection first, so that garbage waiting for one (ended
    sessions' cycles sit in the oldest generation until the next) is not read as a leak."""
    import collections
    import gc

    if collect:
        gc.collect()
    tracked = gc.get_objects()
    by_type = collections.Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in tracked)
    return {"tracked": len(tracked), "types": by_type.most_common(top), "memory": memory_split()}


def garbage(top: int = 60) -> dict[str, Any]:
    """The cyclic garbage waiting in this worker, by type: what a full collection finds that
    reference counting could not free (`GET /stats?garbage=1`). It collects, so the next call
    counts only what was left after this one."""
    import collections
    import gc

    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = list(gc.garbage)
        gc.garbage.clear()
    finally:
        gc.set_debug(0)
    by_type = collections.Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in found)
    del found
    gc.collect()  # saved garbage is still cyclic: free it now
    return {"garbage": sum(by_type.values()), "types": by_type.most_common(top)}


def memory_split() -> dict[str, Any]:
    """Where the worker's memory is, to tell a growing Python heap from native growth: Python's
    small-object blocks (pymalloc, whose arenas are mapped apart from the C heap), SQLite's own
    allocations (mostly its page caches), and the C heap in use and held free (glibc's
    mallinfo2: Python's larger objects, SQLite, extensions; None where it is not glibc)."""
    import ctypes
    import ctypes.util
    import sys

    split: dict[str, Any] = {"python_blocks": sys.getallocatedblocks(), "rss_mb": _rss_mb()}
    try:
        sqlite = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
        sqlite.sqlite3_memory_used.restype = ctypes.c_int64
        split["sqlite_bytes"] = sqlite.sqlite3_memory_used()
    except (OSError, AttributeError):
        split["sqlite_bytes"] = None

    class MallInfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks")
            + ("uordblks", "fordblks", "keepcost")
        ]

    try:
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = MallInfo2
        info = libc.mallinfo2()
        split["c_heap_in_use_bytes"] = info.uordblks + info.hblkhd
        split["c_heap_free_bytes"] = info.fordblks
    except AttributeError:
        split["c_heap_in_use_bytes"] = split["c_heap_free_bytes"] = None
    return split


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
    # The fakes keep no record of their calls: over a long level those records (three objects a
    # turn) would grow the heap the collector walks, which a real engine does not.
    tts = FakeTTS("internal:espeak", sample_rate=24_000, chunks=2, chunk_ms=60, keep_calls=False)
    stt = FakeSTT("internal:whisper", text=TRANSCRIPT, keep_calls=False)
    builtin = BuiltIn(stt=stt, tts=tts)
    services = Services.build(settings, overrides=Overrides(internal_engines=builtin))
    probe = WorkerProbe(services.voice)
    probe.instrument()
    app = create_app(settings, services=services, freeze_gc=True)
    if os.environ.get("BENCH_NO_GC"):
        import gc

        gc.disable()  # an experiment: what the collector costs the frames (no session ends mid-level)
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
        self.by_generation = [0, 0, 0]
        """Collections of the young, middle and oldest generation."""
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        spent = time.perf_counter() - self._started
        self.total += spent
        self.longest = max(self.longest, spent)
        generation = info.get("generation", 0)
        self.full += generation == 2
        self.by_generation[generation] += 1


def percentile(histogram: list[int], q: float) -> float:
    """Quantile `q` of a histogram of unit-wide buckets, as the upper edge of its bucket (bucket
    i covers [i, i + 1)); 0 when it is empty. The frame delays are in 1-ms buckets, the loop lag
    in 0.1-ms ones."""
    total = sum(histogram)
    if not total:
        return 0.0
    rank, seen = q * total, 0
    for index, count in enumerate(histogram):
        seen += count
        if seen >= rank:
            return float(index + 1)
    return float(len(histogram))


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def stats_ports(stats_dir: Path, workers: int) -> list[int]:
    """The side ports of the W workers, once each has written its own."""
    deadline = time.monotonic() + 60
    while len(found := sorted(stats_dir.glob("*.port"))) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(found)} of {workers} workers started within 60 s")
        time.sleep(0.1)
    return [int(p.read_text()) for p in found]
