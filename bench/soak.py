"""A bounded soak: mixed chat and voice against a real Patchbay for N minutes, with flat memory
and latency as the goal (issue 19, fault suite; not run in CI).

Processes: the OpenAI emulator as the LLM upstream, Patchbay (`patchbay serve` as
bench/voice.py runs it: one worker, SQLite, fake built-in STT/TTS so every turn still goes
through the routed speech path), and this one, which drives the load:
- `--chat` clients, each sending /v1/chat/completions one after another, alternately streamed
  and not, and timing each to its last byte;
- `--voice` voice callers, each in a realtime session streaming a spoken question and 1.2 s
  of silence in 20 ms frames in real time, over and over, and reading the replies
  (`response.metadata.server_ms`: what Patchbay adds to a turn). After
  `--turns-per-session` replies (default 10) the caller hangs up and calls again, as callers
  do; 0 keeps one session per caller for the whole soak, whose conversation then grows turn
  after turn (up to the session's history bound, 200 items: about 100 turns).

Every minute it prints chat requests, errors and latency p50/p95, voice turns, sessions
opened, errors and server_ms p50/p95, and Patchbay's resident memory (its whole process tree).
At the end it prints server_ms by the turn's index within its session, and compares the last
minute with the second (the first is warm-up) and flags drift: memory up by more than
`--max-rss-growth` percent, or a p95 up by more than `--max-p95-growth` percent. The exit code
is 1 when something drifted. A p95 that rises by minute but not by turn index is the process
getting slower (a leak, a growing structure); one that rises by turn index is the
conversation's history growing, and with `--turns-per-session 0` the two are the same curve.

    .venv/bin/python bench/soak.py [--minutes 10] [--chat 4] [--voice 4] [--turns-per-session 10] [--json FILE]

`--minute-seconds 10 --minutes 3` is a smoke run of the script itself, not a soak.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
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

from bench.machine import tree_pids
from bench.voice_callers import FRAME_MS, STAMP, frames
from bench.voice_patchbay import patchbay_running, serve_llm
from tests.emulators.harness import free_port

CHAT = {"model": "default", "messages": [{"role": "user", "content": "When does the pharmacy close?"}]}


@dataclass
class Minute:
    chat_ms: list[float] = field(default_factory=list)
    chat_errors: int = 0
    voice_ms: list[float] = field(default_factory=list)
    voice_sessions: int = 0
    voice_errors: int = 0
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
            "voice_sessions": self.voice_sessions,
            "voice_errors": self.voice_errors,
            "rss_mb": round(self.rss_mb, 1),
        }


def by_turn(samples: list[tuple[int, float]], width: int) -> list[dict[str, Any]]:
    """server_ms by the turn's index within its session (1 is a session's first reply), in
    buckets of `width` indexes: whether a turn costs more the longer its conversation."""
    buckets: dict[int, list[float]] = {}
    for index, ms in samples:
        buckets.setdefault((index - 1) // width, []).append(ms)
    return [
        {
            "turns": f"{b * width + 1}" if width == 1 else f"{b * width + 1}-{(b + 1) * width}",
            "n": len(values),
            "p50_ms": _pct(values, 50),
            "p95_ms": _pct(values, 95),
        }
        for b, values in sorted(buckets.items())
    ]


def turn_width(turns_per_session: int, longest: int) -> int:
    """One index a row for sessions of up to 20 turns, else buckets of 10 (20, 30...) indexes,
    ten rows at most. `longest` is the longest session seen, when sessions never end."""
    span = turns_per_session or longest
    return 1 if span <= 20 else 10 * -(-span // 100)


def _pct(values: list[float], q: int) -> float | None:
    if len(values) < 2:
        return round(values[0], 2) if values else None
    return round(statistics.quantiles(values, n=100)[q - 1], 2)


def _tree_rss_mb(root: int) -> float:
    """Resident memory of `root` and its descendants, from /proc."""
    tree = tree_pids(root)
    total = 0.0
    for pid in tree:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
    return total


class Soak:
    def __init__(self, base: str, key: str, turns_per_session: int = 10) -> None:
        self.base = base
        self.key = key
        self.turns_per_session = turns_per_session
        """Replies before a caller hangs up and calls again; 0: one session for the whole soak."""
        self.minutes: list[Minute] = [Minute()]
        self.turn_samples: list[tuple[int, float]] = []
        """(index of the turn within its session, server_ms), every turn of the soak."""
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

    async def voice_caller(self, n: int, turn: list[bytes]) -> None:
        """One caller: a session, then (after `turns_per_session` replies) the next, until the end."""
        delay = n * 0.37  # the callers' turns do not all end at once
        while not self.stopping.is_set():
            try:
                await self.voice_session(turn, delay)
            except (OSError, websockets.WebSocketException):
                self.now.voice_errors += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), 1.0)  # not a hot loop on a refusal
            delay = 0.0

    async def voice_session(self, turn: list[bytes], delay: float) -> None:
        url = self.base.replace("http://", "ws://") + "/v1/realtime?model=default"
        headers = {"authorization": f"Bearer {self.key}"}
        async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
            self.now.voice_sessions += 1
            ended = asyncio.Event()
            reader = asyncio.ensure_future(self._read(ws, ended))
            start, index = time.monotonic() + delay, 0
            try:
                while not self.stopping.is_set() and not ended.is_set() and not reader.done():
                    slot = start + index * FRAME_MS / 1000
                    await asyncio.sleep(max(0.0, slot - time.monotonic()))
                    await ws.send(
                        (STAMP.encode() + f"{slot:.6f}".encode() + turn[index % len(turn)]).decode()
                    )
                    index += 1
            finally:
                reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.WebSocketException):
                await reader
            if reader.done() and not ended.is_set() and not self.stopping.is_set():
                self.now.voice_errors += 1  # the server ended the session before its last turn

    async def _read(self, ws: websockets.ClientConnection, ended: asyncio.Event) -> None:
        """Take each reply's server_ms; set `ended` after the session's last reply."""
        replies = 0
        async for message in ws:
            head = str(message)[:60]
            if '"type":"error"' in head:
                self.now.voice_errors += 1
            if '"response.done"' in head:
                replies += 1
                metadata = orjson.loads(message)["response"].get("metadata") or {}
                if metadata.get("server_ms") is not None:
                    self.now.voice_ms.append(float(metadata["server_ms"]))
                    self.turn_samples.append((replies, float(metadata["server_ms"])))
                if replies == self.turns_per_session:
                    ended.set()
                    return

    async def run(
        self, minutes: int, chat: int, voice: int, server_pid: int, minute_seconds: float = 60.0
    ) -> list[dict[str, Any]]:
        turn = frames()
        tasks = [asyncio.ensure_future(self.chat_client(i)) for i in range(chat)]
        tasks += [asyncio.ensure_future(self.voice_caller(i, turn)) for i in range(voice)]
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
        f"sessions {r['voice_sessions']:>3} err {r['voice_errors']:>2} "
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
    for name in ("chat_errors", "voice_errors"):
        if last.get(name):
            found.append(f"{last[name]} {name.replace('_', ' ')} in the last minute")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=10, help="how long, in whole minutes (default 10)")
    parser.add_argument("--chat", type=int, default=4, help="concurrent chat clients")
    parser.add_argument(
        "--voice", type=int, default=4, help="concurrent voice callers (one session each at a time)"
    )
    parser.add_argument(
        "--turns-per-session",
        type=int,
        default=10,
        metavar="N",
        help="replies before a voice caller hangs up and calls again (default 10); 0: never, "
        "one ever-growing conversation per caller (the history's growth then shows as drift by minute)",
    )
    parser.add_argument("--max-rss-growth", type=float, default=10.0, help="percent, second to last minute")
    parser.add_argument("--max-p95-growth", type=float, default=50.0, help="percent, second to last minute")
    parser.add_argument("--json", type=Path, help="write the per-minute and per-turn-index figures as JSON")
    parser.add_argument(
        "--minute-seconds",
        type=float,
        default=60.0,
        help="length of a reporting period (shorter for a smoke run)",
    )
    args = parser.parse_args()
    if args.turns_per_session < 0:
        parser.error("--turns-per-session must be 0 (never end) or more")

    context = multiprocessing.get_context("spawn")
    llm_port = free_port()
    llm = context.Process(target=serve_llm, args=(llm_port,), daemon=True)
    llm.start()
    try:
        with patchbay_running(1, llm_port) as running:
            base = f"http://127.0.0.1:{running.port}"
            sessions = (
                f"{args.turns_per_session} turns a session"
                if args.turns_per_session
                else "sessions never end"
            )
            print(
                f"soak: {args.minutes} min, {args.chat} chat clients, {args.voice} voice callers ({sessions})"
            )
            soak = Soak(base, running.key, args.turns_per_session)
            rows = asyncio.run(
                soak.run(args.minutes, args.chat, args.voice, running.pid, args.minute_seconds)
            )
    finally:
        llm.terminate()
        llm.join(5)
    longest = max((index for index, _ in soak.turn_samples), default=0)
    turns = by_turn(soak.turn_samples, turn_width(args.turns_per_session, longest))
    print("voice server_ms by turn within the session:")
    for t in turns:
        print(f"  turns {t['turns']:>9}  n {t['n']:>5}  p50 {t['p50_ms']}  p95 {t['p95_ms']}")
    found = drift(rows, args.max_rss_growth, args.max_p95_growth)
    if not args.turns_per_session and any(f.startswith("voice_p95_ms") for f in found):
        found.append("(sessions never end: the voice drift by minute is also drift by turn index, above)")
    print("DRIFT: " + "; ".join(found) if found else "no drift: memory and p95 latency flat")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "by_turn": turns, "drift": found}, indent=1))
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
