"""Two Patchbay checkouts side by side behind one emulator: what a change costs per request.

    .venv/bin/python bench/gateway_ab.py /path/to/before /path/to/after [--rounds 4] [--seconds 6]

Starts the OpenAI emulator and one Patchbay per checkout (each run from its own tree with
`bench/gateway.py patchbay`, so the same settings), then for each round, mode (non-streaming,
streaming) and concurrency (1 and 50) drives both through `bench/gateway.py`'s load generator.
Requests are paired: each worker sends one request to every target in turn, so machine noise
lands on both sides. Each round runs both orders (A then B, B then A): on a loaded machine the
second target of a pair pays for the first one's leftover work, a bias of a few tenths of a
millisecond that alternating the order cancels. CPU per request is each Patchbay process's
user + system time over the cell (background threads included) divided by its requests.

`AB_ENV_A` / `AB_ENV_B` (JSON objects) add environment variables to one side, e.g.
`AB_ENV_A='{"PATCHBAY_REQUEST_LOG_RETENTION_DAYS": "0"}'` to compare a setting within one tree.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gateway as g  # the benchmark next to this file

Figures = dict[tuple[str, int], list[dict[str, float]]]


def _byok_key(key_file: Path) -> str:
    """The BYOK route's API key from the keys `bench/gateway.py patchbay` wrote (one per route)."""
    keys: dict[str, str] = json.loads(key_file.read_text())
    return keys["byok"]


def start(root: str, side: str, emulator_port: int, tmp: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    data = tmp / side
    data.mkdir()
    port = g.free_port()
    env = {**os.environ, "PYTHONPATH": root, **json.loads(os.environ.get(f"AB_ENV_{side}", "{}"))}
    args = ["patchbay", "--port", str(port), "--upstream", f"http://127.0.0.1:{emulator_port}/v1"]
    args += ["--data-dir", str(data), "--key-file", str(data / "key")]
    log = open(data / "patchbay.log", "wb")  # noqa: SIM115 - the child holds it until it exits
    proc = subprocess.Popen(
        [sys.executable, f"{root}/bench/gateway.py", *args], env=env, cwd=root, stderr=log
    )
    return proc, port, data / "key"


async def cell(
    targets: list[g.Target],
    procs: dict[str, subprocess.Popen[bytes]],
    stream: bool,
    concurrency: int,
    seconds: float,
) -> dict[str, float]:
    await g.run_cell(targets, stream=stream, concurrency=concurrency, requests=200, seconds=2)  # warm-up
    before = {side: g.cpu_seconds(p.pid) for side, p in procs.items()}
    cells = await g.run_cell(targets, stream=stream, concurrency=concurrency, requests=10**6, seconds=seconds)
    a, b = cells["A"], cells["B"]
    out = {"p50_a": a.pct(a.latencies, 0.5), "p50_b": b.pct(b.latencies, 0.5)}
    out |= {"ttfb_a": a.pct(a.first_bytes, 0.5), "ttfb_b": b.pct(b.first_bytes, 0.5)}
    for side, proc in procs.items():
        out[f"cpu_{side.lower()}"] = (
            (g.cpu_seconds(proc.pid) - before[side]) * 1e6 / max(1, len(cells[side].latencies))
        )
    out["errors"] = a.errors + b.errors
    return out


def summary(figures: Figures) -> None:
    def show(name: str, values: list[float], unit: str) -> None:
        print(
            f"{name:<38} median {statistics.median(values):8.3f} {unit}  ({min(values):.3f} to {max(values):.3f})"
        )

    def diffs(key: tuple[str, int], f: Callable[[dict[str, float]], float]) -> list[float]:
        runs = figures[key]
        return [(f(runs[i]) + f(runs[i + 1])) / 2 for i in range(0, len(runs), 2)]  # the AB and BA of a round

    print()
    show("complete c=1: p50 B - A", diffs(("complete", 1), lambda d: d["p50_b"] - d["p50_a"]), "ms")
    show("stream c=1: first byte p50 B - A", diffs(("stream", 1), lambda d: d["ttfb_b"] - d["ttfb_a"]), "ms")
    show("stream c=1: whole stream p50 B - A", diffs(("stream", 1), lambda d: d["p50_b"] - d["p50_a"]), "ms")
    for mode in ("complete", "stream"):
        show(f"{mode} c=50: CPU per request A", diffs((mode, 50), lambda d: d["cpu_a"]), "us")
        show(
            f"{mode} c=50: CPU per request B - A", diffs((mode, 50), lambda d: d["cpu_b"] - d["cpu_a"]), "us"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("before", help="checkout A (its bench/gateway.py and code serve side A)")
    parser.add_argument("after", help="checkout B")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each measured cell")
    args = parser.parse_args()
    if Path(args.before).resolve().parent != Path(args.after).resolve().parent:
        print(
            "note: the two checkouts are in different directories; the same two commits have "
            "read some 30 us further apart per request that way (docs/performance.md). Put both "
            "side by side, e.g. `git worktree add /tmp/a <rev>` and `git worktree add /tmp/b <rev>`.",
            file=sys.stderr,
        )
    figures: Figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        emulator_port = g.free_port()
        here = str(Path(__file__).resolve().parent.parent)
        emulator = subprocess.Popen(
            [sys.executable, f"{here}/bench/gateway.py", "emulator", "--port", str(emulator_port)],
            env={**os.environ, "PYTHONPATH": here},
        )
        started = {
            side: start(root, side, emulator_port, Path(tmp))
            for side, root in (("A", args.before), ("B", args.after))
        }
        procs = {side: proc for side, (proc, _, _) in started.items()}
        try:
            g.wait_port(emulator_port)
            for _, port, _ in started.values():
                g.wait_port(port)
            targets = [
                g.Target(side, f"http://127.0.0.1:{port}/v1/chat/completions", _byok_key(key), "default")
                for side, (_, port, key) in started.items()
            ]
            print(f"A {args.before}, B {args.after}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
            for r in range(args.rounds):
                for order in ("AB", "BA"):
                    ordered = targets if order == "AB" else targets[::-1]
                    for stream in (False, True):
                        for concurrency in (1, 50):
                            mode = "stream" if stream else "complete"
                            d = asyncio.run(cell(ordered, procs, stream, concurrency, args.seconds))
                            figures.setdefault((mode, concurrency), []).append(d)
                            print(
                                f"round {r} {order} {mode:<8} c={concurrency:<3} p50 A {d['p50_a']:.3f} B {d['p50_b']:.3f} ms, "
                                f"first byte A {d['ttfb_a']:.3f} B {d['ttfb_b']:.3f} ms, CPU/request A {d['cpu_a']:.0f} "
                                f"B {d['cpu_b']:.0f} us, errors {d['errors']:.0f}, load {os.getloadavg()[0]:.2f}",
                                flush=True,
                            )
            summary(figures)
        finally:
            for proc in [emulator, *procs.values()]:
                proc.terminate()
            for proc in [emulator, *procs.values()]:
                proc.wait(10)


if __name__ == "__main__":
    main()
