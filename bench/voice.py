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
  resident memory, the callers' CPU apart from it, and how the sessions spread over workers;
- `other%` and `oth pk%`: what processes outside the benchmark used of the machine meanwhile
  (`bench/machine.py`, short-lived ones included), on average and in its busiest half second, in
  % of one core. Late frames in a level with a high peak say more about the machine than about
  Patchbay.
The capacity figure is the largest N with no late frame; the goal is also p95 under 10 ms.

`--wire twilio` makes every session a phone call placed as Twilio places one: the webhook
(`POST /v1/twilio/voice`, the key as Basic auth), the TwiML's media stream, µ-law 8 kHz `media`
messages stamped in their `sequenceNumber`, each `mark` echoed at once. Each call keeps its
checkpoint in the database after each reply (docs/voice.md, "A worker that dies"), so the
level includes those writes. Its turn latency is read from the workers' own figures, since a
phone call's caller gets no `response.done`.

Run `.venv/bin/python bench/voice.py --help`. Defaults: N = 50 100 200 300, 30 s a level,
one worker. `--workers 1 2` measures both in one run; `--chart FILE.png` draws the figures
(matplotlib, from the `bench` extra); `--json FILE` keeps them. Knobs for experiments:
`BENCH_SILENT=1` streams silence only (no turns: the per-frame path alone), `BENCH_NO_GC=1`
turns the cyclic collector off in the workers (what it costs the frames; no session ends
within a level, so only the warm-up's ended sessions stay uncollected),
`BENCH_PROFILE=/tmp/p` writes each worker's cProfile of the last level to `/tmp/p.<pid>`,
`BENCH_VERBOSE=1` prints every turn's metadata, and `GET /stats?census=1` on a worker's side
port (its number is in `<data dir>/stats/<pid>.port` while a level runs) lists the objects its
collector tracks, by type (`&collect=1`: after a full collection), and where its memory is
(Python's small objects, SQLite, the C heap in use and held free); `GET /stats?garbage=1`
collects and lists the cyclic garbage found, by type (what reference counting did not free).

Its parts: the callers (`bench/voice_callers.py`), the probe and factory inside each worker
(`bench/voice_worker.py`), the processes under test (`bench/voice_patchbay.py`) and the table
and chart (`bench/voice_report.py`); this module runs the levels and sums them up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.machine import OtherCpu
from bench.voice_callers import FRAME_MS, WIRES, frames, run_callers
from bench.voice_patchbay import patchbay_running, serve_llm
from bench.voice_report import GOAL_P95_MS, HEADER, chart, row
from bench.voice_worker import LATE_MS, percentile, stats_ports
from tests.emulators.harness import free_port


def _split(n: int, parts: int) -> list[int]:
    return [n // parts + (i < n % parts) for i in range(parts) if n // parts + (i < n % parts)]


@dataclass(frozen=True)
class Server:
    url: str
    key: str
    wire: str
    """`realtime` sessions, or `twilio` phone calls (`url` is then the webhook's origin)."""
    stats: list[httpx.AsyncClient]
    """One client per worker, on its side port."""


async def level(n: int, server: Server, turn: list[bytes], *, seconds: float, callers: int) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    procs, pipes = [], []
    for i, share in enumerate(_split(n, callers)):
        mine, theirs = context.Pipe()
        proc = context.Process(
            target=run_callers,
            args=(share, n * 100 + i, server.url, server.key, turn, theirs, server.wire),
            daemon=True,
        )
        proc.start()
        procs.append(proc)
        pipes.append(mine)
    loop = asyncio.get_running_loop()
    for pipe in pipes:
        await loop.run_in_executor(None, pipe.recv)
    before = [(await w.post("/stats")).json() for w in server.stats]
    others = OtherCpu(os.getpid())
    others.start()
    start = time.monotonic() + 0.2
    for pipe in pipes:
        pipe.send((start, seconds))
    await asyncio.sleep(start + seconds - time.monotonic())
    dump = os.environ.get("BENCH_PROFILE")
    after = [(await w.get("/stats", params={"dump": dump} if dump else None)).json() for w in server.stats]
    machine = others.stop()
    results = []
    for pipe in pipes:
        pipe.send("stop")
        results.append(await loop.run_in_executor(None, pipe.recv))
    for proc in procs:
        proc.join(10)

    def spent(field: str) -> float:
        return sum(a[field] - b[field] for a, b in zip(after, before, strict=True)) / seconds

    # A phone call's turns reach no caller: the workers keep them (the last 2,048 of each
    # worker's figures; the count is the workers' own).
    source = after if server.wire == "twilio" else results
    server_ms = sorted(ms for r in source for ms in r["server_ms"])
    turns = (
        sum(a["turns"] - b["turns"] for a, b in zip(after, before, strict=True))
        if server.wire == "twilio"
        else len(server_ms)
    )
    delays = [sum(bucket) for bucket in zip(*(a["delays"] for a in after), strict=True)]
    frames = sum(a["frames"] for a in after)
    cpu = spent("cpu_s")
    rss = sum(a["rss_mb"] for a in after)
    return {
        "n": n,
        "workers": len(after),
        "turns": turns,
        "p50": statistics.median(server_ms) if server_ms else None,
        "p95": server_ms[int(len(server_ms) * 0.95)] if server_ms else None,
        "max": server_ms[-1] if server_ms else None,
        "frames": frames,
        "sent": sum(r["sent"] for r in results),
        "late": sum(a["late"] for a in after),
        "delay_p99": percentile(delays, 0.99),
        "delay_max": max(a["delay_max_ms"] for a in after),
        "caller_worst": max(r["worst"] for r in results),
        "lag_max": max(a["lag_max_ms"] for a in after),
        "sessions": [a["live_sessions"] for a in after],
        "server_cpu_pct": 100 * cpu,
        "server_sys_pct": 100 * spent("sys_s"),
        "gc_pct": 100 * spent("gc_s"),
        "gc_max": max(a["gc_max_ms"] for a in after),
        "gc_full": sum(a["gc_full"] - b["gc_full"] for a, b in zip(after, before, strict=True)),
        "gc_collections": [
            sum(a["gc_collections"][g] - b["gc_collections"][g] for a, b in zip(after, before, strict=True))
            for g in range(3)
        ],
        "cpu_pct_per_session": 100 * cpu / n,
        "us_per_frame": 1e6 * cpu * FRAME_MS / 1000 / n,
        "caller_cpu_pct": 100 * sum(r["cpu_s"] for r in results) / seconds,
        "other_cpu_pct": machine.mean_pct,
        "other_peak_pct": machine.peak_pct,
        "steal_pct": machine.steal_pct,
        "rss_mb": rss,
        "rss_per_session_kb": 1024 * (rss - sum(b["rss_mb"] for b in before)) / n,
    }


async def _measure(
    url: str, key: str, stats_dir: Path, workers: int, args: argparse.Namespace, turn: list[bytes]
) -> list[dict[str, Any]]:
    ports = await asyncio.to_thread(stats_ports, stats_dir, workers)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=f"http://127.0.0.1:{p}", timeout=30))
            for p in ports
        ]
        server = Server(url, key, args.wire, clients)
        # Warm-up, not reported: first connections load the org's routing, open the upstream
        # pool and import lazily-loaded modules, in every worker.
        await level(20 * workers, server, turn, seconds=5.0, callers=args.callers)
        rows = []
        for n in args.levels:
            for _ in range(args.repeat):
                figures = await level(n, server, turn, seconds=args.seconds, callers=args.callers)
                print(row(figures), flush=True)
                rows.append(figures)
        return rows


def run_workers(
    workers: int, args: argparse.Namespace, turn: list[bytes], llm_port: int
) -> list[dict[str, Any]]:
    """Start Patchbay with W workers on a fresh database, measure every level, stop it."""
    with patchbay_running(workers, llm_port) as running:
        url = (
            f"http://127.0.0.1:{running.port}"
            if args.wire == "twilio"
            else f"ws://127.0.0.1:{running.port}/v1/realtime?model=default"
        )
        return asyncio.run(_measure(url, running.key, running.data_dir / "stats", workers, args, turn))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="See the module docstring for details."
    )
    parser.add_argument("levels", nargs="*", type=int, default=[50, 100, 200, 300], help="session counts N")
    parser.add_argument("--workers", nargs="+", type=int, default=[1], help="Patchbay worker counts to run")
    parser.add_argument(
        "--seconds",
        type=float,
        default=30.0,
        help="measured seconds per level (30: a 15-s level can pass where longer ones do not; "
        "docs/performance.md, Longer levels on the same machine)",
    )
    parser.add_argument(
        "--wire",
        choices=WIRES,
        default="realtime",
        help="realtime sessions, or phone calls through the Twilio webhook and media stream",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per level")
    parser.add_argument("--callers", type=int, default=1, help="caller processes")
    parser.add_argument("--chart", type=Path, help="write a PNG chart of the figures")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    args = parser.parse_args()
    turn = frames(args.wire)
    print(
        f"{args.wire}: {args.seconds:.0f} s per level, 20 ms frames, "
        f"turn = {len(turn) * FRAME_MS / 1000:.1f} s of audio, "
        f"{args.callers} caller process(es), {os.cpu_count()} cores"
    )
    print(HEADER)
    context = multiprocessing.get_context("spawn")
    llm_port = free_port()
    llm = context.Process(target=serve_llm, args=(llm_port,), daemon=True)
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
