"""Does a voice turn cost the server more the longer its conversation? (issue 19, soak drift)

One realtime session against a real Patchbay (as bench/voice.py runs it: one worker, fake
built-in STT/TTS, the OpenAI emulator upstream) plays `--turns` turns back to back, each the
spoken question and 1.2 s of silence sent at once (faster than real time: server VAD works on
audio time), and waits for each reply's `response.done` before the next. The worker's own CPU
(user + system, read in the worker, so neither the caller's nor the emulator's) is taken every
`--block` turns, and each turn's `server_ms` is kept; both are printed per block of turns.
`--sessions K` repeats that K times, one fresh session after another, and averages per block.

    .venv/bin/python bench/voice_history.py [--turns 150] [--block 10] [--sessions 3]

`BENCH_PROFILE=/tmp/p` also writes the worker's cProfile of the first block of the last
session to `/tmp/p.first.<pid>` and of its last block to `/tmp/p.last.<pid>`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import orjson
import websockets

from bench.voice_callers import STAMP, frames
from bench.voice_patchbay import patchbay_running, serve_llm
from bench.voice_worker import stats_ports
from tests.emulators.harness import free_port


async def one_session(
    url: str, key: str, stats: httpx.AsyncClient, args: argparse.Namespace, last: bool
) -> list[dict[str, Any]]:
    turn = frames()
    profile = os.environ.get("BENCH_PROFILE") if last else None
    blocks: list[dict[str, Any]] = []
    async with websockets.connect(
        url, additional_headers={"authorization": f"Bearer {key}"}, max_size=None
    ) as ws:
        server_ms: list[float] = []
        before = (await stats.post("/stats")).json()["cpu_s"]  # also restarts the profile
        for index in range(1, args.turns + 1):
            stamp = f"{STAMP}{time.monotonic():.6f}".encode()
            for frame in turn:
                await ws.send((stamp + frame).decode())
            async for message in ws:
                if '"response.done"' in str(message)[:60]:
                    metadata = orjson.loads(message)["response"].get("metadata") or {}
                    server_ms.append(float(metadata.get("server_ms") or 0.0))
                    break
            if index % args.block == 0:
                first, final = index == args.block, index == args.turns
                dump = (
                    {"dump": f"{profile}.{'first' if first else 'last'}"}
                    if profile and (first or final)
                    else None
                )
                after = (await stats.get("/stats", params=dump)).json()["cpu_s"]
                blocks.append(
                    {
                        "turns": f"{index - args.block + 1}-{index}",
                        "cpu_ms_per_turn": 1000 * (after - before) / args.block,
                        "server_ms_p50": statistics.median(server_ms),
                    }
                )
                server_ms = []
                before = (await stats.post("/stats")).json()["cpu_s"]
    return blocks


async def measure(port: int, key: str, stats_port: int, args: argparse.Namespace) -> None:
    url = f"ws://127.0.0.1:{port}/v1/realtime?model=default"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stats_port}", timeout=30) as stats:
        runs = [
            await one_session(url, key, stats, args, last=i == args.sessions - 1)
            for i in range(args.sessions)
        ]
    print(f"{'turns':>9} {'cpu ms/turn':>12} {'(each session)':>24} {'server_ms p50':>14}")
    for rows in zip(*runs, strict=True):
        cpu = [r["cpu_ms_per_turn"] for r in rows]
        each = " ".join(f"{c:.2f}" for c in cpu)
        print(
            f"{rows[0]['turns']:>9} {statistics.median(cpu):12.2f} {each:>24} "
            f"{statistics.median(r['server_ms_p50'] for r in rows):14.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=150, help="turns in each session (default 150)")
    parser.add_argument("--block", type=int, default=10, help="turns a row (default 10)")
    parser.add_argument("--sessions", type=int, default=3, help="sessions, one after another (default 3)")
    args = parser.parse_args()
    if args.turns % args.block:
        parser.error("--turns must be a multiple of --block")
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    llm_port = free_port()
    llm = context.Process(target=serve_llm, args=(llm_port,), daemon=True)
    llm.start()
    try:
        with patchbay_running(1, llm_port) as running:
            stats_port = stats_ports(running.data_dir / "stats", 1)[0]
            asyncio.run(measure(running.port, running.key, stats_port, args))
    finally:
        llm.terminate()
        llm.join(5)


if __name__ == "__main__":
    main()
