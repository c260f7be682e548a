"""A bounded soak: mixed chat and voice against a real Patchbay for N minutes, with flat memory
and latency as the goal (issue 19, fault suite; not run in CI).

Processes: the OpenAI emulator as the LLM upstream, Patchbay (`patchbay serve` as
bench/voice.py runs it: one worker, SQLite, fake built-in STT/TTS so every turn still goes
through the routed speech path), and this one, which drives the load:
- `--chat` clients, each sending /v1/chat/completions one after another, alternately streamed
  and not, and timing each to its last byte;
- `--voice` realtime sessions, each streaming a spoken question and 1.2 s of silence in 20 ms
  frames in real time, over and over, and reading the replies (`response.metadata.server_ms`:
  what Patchbay adds to a turn).

Every minute it prints chat requests, errors and latency p50/p95, voice turns and server_ms
p50/p95, and Patchbay's resident memory (its whole process tree). At the end it compares the
last minute with the second (the first is warm-up) and flags drift: memory up by more than
`--max-rss-growth` percent, or a p95 up by more than `--max-p95-growth` percent. The exit code
is 1 when something drifted.

    .venv/bin/python bench/soak.py [--minutes 10] [--chat 4] [--voice 4] [--json FILE]

`--minute-seconds 10 --minutes 3` is a smoke run of the script itself, not a soak.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import orjson
import websockets

from bench.voice import FRAME_MS, STAMP, _serve_llm, frames, patchbay_running
from tests.emulators.harness import free_port

CHAT = {"model": "default", "messages": [{"role": "user", "content": "When does the pharmacy close?"}]}


@dataclass
class Minute:
    chat_ms: list[float] = field(default_factory=list)
    chat_errors: int = 0
    voice_ms: list[float] = field(default_factory=list)
    rss_mb: float = 0.0

    def row(self, index: int) -> dict[str, Any]:
        return {
            "minute": index,
            "chat": len(self.chat_ms),
            "chat_errors": self.chat_errors,
            "chat_p50_ms": _pct(self.chat_ms, 50),
            "chat_p95_ms": _pct(self.chat_ms, 95),
            "voice_turns": len(self.voice_ms),
            "voice_p50_ms": _pct(self.voice_ms, 50),
            "voice_p95_ms": _pct(self.voice_ms, 95),
            "rss_mb": round(self.rss_mb, 1),
        }


def _pct(values: list[float], q: int) -> float | None:
    if len(values) < 2:
        return round(values[0], 2) if values else None
    return round(statistics.quantiles(values, n=100)[q - 1], 2)


def _tree_rss_mb(root: int) -> float:
    """Resident memory of `root` and its descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, parent in parents.items() if parent == pid and p not in tree]
        tree.update(children)
        frontier += children
    total = 0.0
    for pid in tree:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
    return total


class Soak:
    def __init__(self, base: str, key: str) -> None:
        self.base = base
        self.key = key
        self.minutes: list[Minute] = [Minute()]
        self.stopping = asyncio.Event()

    @property
    def now(self) -> Minute:
        return self.minutes[-1]

    async def chat_client(self, n: int) -> None:
        headers = {"authorization": f"Bearer {self.key}"}
        async with httpx.AsyncClient(base_url=self.base, headers=headers, timeout=30) as http:
            stream = n % 2 == 0
            while not self.stopping.is_set():
                started = time.perf_counter()
                try:
                    response = await http.post("/v1/chat/completions", json={**CHAT, "stream": stream})
                    ok = response.status_code == 200 and (not stream or response.text.endswith("[DONE]\n\n"))
                except httpx.TransportError:
                    ok = False
                if ok:
                    self.now.chat_ms.append((time.perf_counter() - started) * 1000)
                else:
                    self.now.chat_errors += 1
                stream = not stream

    async def voice_session(self, n: int, turn: list[bytes]) -> None:
        url = self.base.replace("http://", "ws://") + "/v1/realtime?model=default"
        headers = {"authorization": f"Bearer {self.key}"}
        async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
            reader = asyncio.ensure_future(self._read(ws))
            start, index = time.monotonic() + n * 0.37, 0
            while not self.stopping.is_set():
                slot = start + index * FRAME_MS / 1000
                await asyncio.sleep(max(0.0, slot - time.monotonic()))
                await ws.send((STAMP.encode() + f"{slot:.6f}".encode() + turn[index % len(turn)]).decode())
                index += 1
            reader.cancel()

    async def _read(self, ws: websockets.ClientConnection) -> None:
        async for message in ws:
            if '"response.done"' in str(message)[:60]:
                metadata = orjson.loads(message)["response"].get("metadata") or {}
                if metadata.get("server_ms") is not None:
                    self.now.voice_ms.append(float(metadata["server_ms"]))

    async def run(
        self, minutes: int, chat: int, voice: int, server_pid: int, minute_seconds: float = 60.0
    ) -> list[dict[str, Any]]:
        turn = frames()
        tasks = [asyncio.ensure_future(self.chat_client(i)) for i in range(chat)]
        tasks += [asyncio.ensure_future(self.voice_session(i, turn)) for i in range(voice)]
        rows: list[dict[str, Any]] = []
        try:
            for index in range(1, minutes + 1):
                await asyncio.sleep(minute_seconds)  # the reporting period itself
                self.now.rss_mb = _tree_rss_mb(server_pid)
                rows.append(self.now.row(index))
                print(_line(rows[-1]), flush=True)
                self.minutes.append(Minute())
        finally:
            self.stopping.set()
            await asyncio.wait(tasks, timeout=10)
            for task in tasks:
                task.cancel()
        return rows


def _line(r: dict[str, Any]) -> str:
    return (
        f"min {r['minute']:>3}  chat {r['chat']:>6} err {r['chat_errors']:>3} "
        f"p50 {r['chat_p50_ms']} p95 {r['chat_p95_ms']} ms  voice turns {r['voice_turns']:>4} "
        f"server_ms p50 {r['voice_p50_ms']} p95 {r['voice_p95_ms']}  rss {r['rss_mb']} MB"
    )


def drift(rows: list[dict[str, Any]], max_rss_growth: float, max_p95_growth: float) -> list[str]:
    """What grew from the second minute (the first is warm-up) to the last, beyond the bounds."""
    if len(rows) < 3:
        return []
    base, last = rows[1], rows[-1]
    found: list[str] = []
    if base["rss_mb"] and last["rss_mb"] > base["rss_mb"] * (1 + max_rss_growth / 100):
        found.append(f"memory {base['rss_mb']} -> {last['rss_mb']} MB")
    for name in ("chat_p95_ms", "voice_p95_ms"):
        if base[name] and last[name] and last[name] > base[name] * (1 + max_p95_growth / 100):
            found.append(f"{name} {base[name]} -> {last[name]}")
    if last["chat_errors"]:
        found.append(f"{last['chat_errors']} chat errors in the last minute")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=10, help="how long, in whole minutes (default 10)")
    parser.add_argument("--chat", type=int, default=4, help="concurrent chat clients")
    parser.add_argument("--voice", type=int, default=4, help="concurrent realtime voice sessions")
    parser.add_argument("--max-rss-growth", type=float, default=10.0, help="percent, second to last minute")
    parser.add_argument("--max-p95-growth", type=float, default=50.0, help="percent, second to last minute")
    parser.add_argument("--json", type=Path, help="write the per-minute figures as JSON")
    parser.add_argument(
        "--minute-seconds",
        type=float,
        default=60.0,
        help="length of a reporting period (shorter for a smoke run)",
    )
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    llm_port = free_port()
    llm = context.Process(target=_serve_llm, args=(llm_port,), daemon=True)
    llm.start()
    try:
        with patchbay_running(1, llm_port) as running:
            base = f"http://127.0.0.1:{running.port}"
            _wait_ready(base)
            print(f"soak: {args.minutes} min, {args.chat} chat clients, {args.voice} voice sessions")
            rows = asyncio.run(
                Soak(base, running.key).run(
                    args.minutes, args.chat, args.voice, running.pid, args.minute_seconds
                )
            )
    finally:
        llm.terminate()
        llm.join(5)
    found = drift(rows, args.max_rss_growth, args.max_p95_growth)
    print("DRIFT: " + "; ".join(found) if found else "no drift: memory and p95 latency flat")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "drift": found}, indent=1))
    sys.exit(1 if found else 0)


def _wait_ready(base: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)  # polling for readiness
    raise SystemExit("Patchbay did not get ready within 120 s")


if __name__ == "__main__":
    main()
