"""A separate process for test_usage_journal.py: records usage as a serving process does, then
kills itself.

`python tests/billing/usage_worker.py DB_URL JOURNAL_DIR ORG_ID COUNT`: opens the usage journal
in JOURNAL_DIR, records COUNT segments (request ids `r-0` ...), writes the first half into the
database (which empties its journal file), records the second half, and sends itself SIGKILL:
no flush, no shutdown code.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from billing.usage import Segment, UsageSegment, new_usage_recorder
from providers.contract import BillingSource
from providers.types import Usage
from server.db import Database


def segment(org_id: str, i: int) -> UsageSegment:
    return UsageSegment(
        org_id=org_id,
        segment=Segment.LLM,
        provider="openai",
        billing_source=BillingSource.PLATFORM,
        request_id=f"r-{i}",
        tokens=Usage(input_tokens=10 + i, output_tokens=i),
        cost_micro_usd=100 + i,
    )


async def main(url: str, directory: Path, org_id: str, count: int) -> None:
    db = Database(url)
    recorder = new_usage_recorder(db.sessions, flush_interval=3600)
    await recorder.open_journal(directory)
    for i in range(count // 2):
        recorder.record(segment(org_id, i))
    assert await recorder.flush() == count // 2
    for i in range(count // 2, count):
        recorder.record(segment(org_id, i))
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])))
