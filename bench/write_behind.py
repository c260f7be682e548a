"""Whether the write-behind keeps up with a gateway held at saturation (issue 19).

bench/gateway.py's cells last seconds, and what they leave buffered is written after them. This
holds one worker (the processes of bench/gateway.py: the emulator, Patchbay on SQLite unless
`BENCH_DATABASE_URL`) at `--concurrency` on the BYOK route for `--seconds`, printing each 5-s
stretch's rate, then stops Patchbay as an operator would (SIGTERM: the buffers are written on
the way out) and reports:
- requests served, and the `request_log` and `usage_records` rows written for them (one each);
- what Patchbay's log reported: entries dropped (`write buffer full`), writes that failed and
  were retried, journal replays that failed;
- how long Patchbay took to stop: mostly the closing flush, i.e. what was still buffered.

The exit code is 1 when a served request has no request-log or usage row, or anything was
dropped.

    .venv/bin/python bench/write_behind.py [--seconds 40] [--concurrency 50]

`BENCH_DATABASE_URL`, `BENCH_REDIS_URL` and `BENCH_RATE_LIMIT` as for bench/gateway.py (the
database must be empty).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gateway import Target, bench_settings, free_port, run_cell, wait_port  # noqa: E402

STRETCH_SECONDS = 5.0
LOG_MARKS = {
    "dropped": "write buffer full; dropping entries",
    "failed writes": "writing buffered entries failed; will retry",
    "failed replays": "usage journal replay failed",
}


async def hold(target: Target, seconds: float, concurrency: int) -> tuple[int, int]:
    """Load at `concurrency` for `seconds`, in stretches; returns (served, errors)."""
    served = errors = 0
    began = time.perf_counter()
    while (left := seconds - (time.perf_counter() - began)) > 0.5:
        cells = await run_cell(
            [target],
            stream=False,
            concurrency=concurrency,
            requests=10**9,
            seconds=min(STRETCH_SECONDS, left),
        )
        cell = cells[target.name]
        served += len(cell.latencies)
        errors += cell.errors
        print(
            f"{time.perf_counter() - began:5.0f} s  {cell.rate:6.0f} req/s  p50 {cell.pct(cell.latencies, 0.5):6.2f} ms"
            f"  p99 {cell.pct(cell.latencies, 0.99):7.2f} ms  errors {cell.errors}",
            flush=True,
        )
    return served, errors


def log_marks(logged: str) -> dict[str, collections.Counter[str]]:
    """How many times each mark was logged, by the buffer it names (Patchbay logs JSON lines)."""
    marks: dict[str, collections.Counter[str]] = {name: collections.Counter() for name in LOG_MARKS}
    for line in logged.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        for name, mark in LOG_MARKS.items():
            if isinstance(entry, dict) and entry.get("msg") == mark:
                marks[name][str(entry.get("buffer", "-"))] += 1
    return marks


async def count_rows(url: str) -> dict[str, int]:
    from sqlalchemy import text

    from server.db import Database

    db = Database(url)
    try:
        async with db.sessions() as session:
            return {
                table: int((await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())
                for table in ("request_log", "usage_records", "audit_events")
            }
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    gateway = str(ROOT / "bench" / "gateway.py")
    with tempfile.TemporaryDirectory() as tmp:
        emu_port, pb_port = free_port(), free_port()
        key_file = Path(tmp) / "key"
        log_path = Path(tmp) / "patchbay.log"
        upstream = f"http://127.0.0.1:{emu_port}/v1"
        emulator = subprocess.Popen([sys.executable, gateway, "emulator", "--port", str(emu_port)])
        with open(log_path, "wb") as log:
            patchbay = subprocess.Popen(
                [sys.executable, gateway, "patchbay", "--port", str(pb_port), "--upstream", upstream]
                + ["--data-dir", tmp, "--key-file", str(key_file)],
                stderr=log,
            )
        try:
            wait_port(emu_port)
            wait_port(pb_port)
            key = json.loads(key_file.read_text())["byok"]
            target = Target("byok", f"http://127.0.0.1:{pb_port}/v1/chat/completions", key, "default")
            print(
                f"patchbay :{pb_port}, {os.cpu_count()} CPUs, c={args.concurrency}, {args.seconds:g} s",
                flush=True,
            )
            served, errors = asyncio.run(hold(target, args.seconds, args.concurrency))
            stopping = time.perf_counter()
            patchbay.send_signal(signal.SIGTERM)
            patchbay.wait(120)
            stop_seconds = time.perf_counter() - stopping
        finally:
            for process in (patchbay, emulator):
                process.terminate()
                process.wait(10)
        rows = asyncio.run(count_rows(bench_settings(tmp).resolved_database_url))
        logged = log_path.read_text(errors="replace")
    marks = log_marks(logged)
    print(
        f"served {served} ({served / args.seconds:.0f}/s), errors {errors}; Patchbay stopped in {stop_seconds:.1f} s"
    )
    print("rows written: " + ", ".join(f"{table} {count}" for table, count in rows.items()))
    print("log lines: " + ", ".join(f"{name} {dict(buffers) or 0}" for name, buffers in marks.items()))
    missing = {
        table: served - rows[table] for table in ("request_log", "usage_records") if rows[table] < served
    }
    if missing or marks["dropped"]:
        print(f"NOT KEPT UP: rows missing {missing}, drop reports by buffer {dict(marks['dropped'])}")
        sys.exit(1)
    print("kept up: every served request has its request-log and usage rows, nothing dropped")


if __name__ == "__main__":
    main()
