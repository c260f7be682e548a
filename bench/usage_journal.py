"""What journaling a usage row costs the request path, in microseconds, without a server.

A routed chat request records one usage segment (`billing.usage.UsageRecorder.record`); while
serving, the recorder first appends it to the process's usage journal (one orjson line, one
`write(2)`; `billing.usage_journal`). This times `record` with the journal off (the CLI, and
every server before issue 19) and on, alternating rounds so both see the same machine load,
and reports the median per call in wall and CPU time. The database is never touched: the
buffer is emptied between rounds instead of flushed.

    .venv/bin/python bench/usage_journal.py [--rounds 40] [--per-round 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy.ext.asyncio import async_sessionmaker  # noqa: E402

from billing.usage import Segment, UsageRecorder, UsageSegment, new_usage_recorder  # noqa: E402
from providers.contract import BillingSource  # noqa: E402
from providers.types import Usage  # noqa: E402


def segments(count: int) -> list[UsageSegment]:
    return [
        UsageSegment(
            org_id="org_0123456789abcdefghjk",
            segment=Segment.LLM,
            provider="openai",
            billing_source=BillingSource.BYOK,
            model="gpt-4o-mini",
            profile_id="openai:default",
            connection_id="con_0123456789abcdefghjk",
            api_key_id="key_0123456789abcdefghjk",
            request_id=f"req_{i:016x}",
            intent="chat",
            tokens=Usage(input_tokens=20, output_tokens=60),
            latency_ms=12.5,
            cost_micro_usd=135,
        )
        for i in range(count)
    ]


def one_round(recorder: UsageRecorder, batch: list[UsageSegment]) -> tuple[float, float]:
    """Wall and CPU µs per `record` over the batch."""
    wall, cpu = time.perf_counter(), time.process_time()
    for segment in batch:
        recorder.record(segment)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    recorder._pending.clear()  # stands in for the flush: no database here
    return wall * 1e6 / len(batch), cpu * 1e6 / len(batch)


async def main(rounds: int, per_round: int) -> None:
    sessions = async_sessionmaker()
    with tempfile.TemporaryDirectory() as tmp:
        off = new_usage_recorder(sessions)
        on = new_usage_recorder(sessions)
        await on.open_journal(Path(tmp) / "usage-journal")
        batch = segments(per_round)
        results: dict[str, list[tuple[float, float]]] = {"journal off": [], "journal on": []}
        for _ in range(rounds):
            results["journal off"].append(one_round(off, batch))
            results["journal on"].append(one_round(on, batch))
            journal = on._journal
            assert journal is not None
            journal.after_write(*journal.before_write(), written=True, idle=True)  # empty the file
    print(f"{'record()':<14}{'wall µs p50':>12}{'cpu µs p50':>12}  ({rounds} rounds of {per_round})")
    for name, values in results.items():
        wall = statistics.median(w for w, _ in values)
        cpu = statistics.median(c for _, c in values)
        print(f"{name:<14}{wall:>12.2f}{cpu:>12.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--per-round", type=int, default=5000)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.per_round))
