"""A separate process for test_ledger_crash.py: holds and settles in a loop until it is killed.

`python tests/billing/ledger_worker.py DB_URL ORG_ID LOOPS`: LOOPS concurrent loops each hold a
small amount, settle it at a cost of their choosing, and only then print one JSON line
`{"hold": ..., "settle": ..., "charged": ...}`: the analogue of a response the client received
complete. Before the loops it takes one hold it never settles (a long request in flight).
The parent kills the process with SIGKILL at some point of that stream.
"""

from __future__ import annotations

import asyncio
import json
import sys

from billing.ledger import Ledger
from billing.preflight import InsufficientCreditsError
from server.db import Database


async def loop(ledger: Ledger, org_id: str, n: int) -> None:
    i = 0
    while True:
        i += 1
        tag = f"{n}-{i}"
        amount = 1_000 + (i * 7919 + n * 104_729) % 50_000
        try:
            hold = await ledger.hold(org_id, amount, f"hold-{tag}")
        except InsufficientCreditsError:
            continue
        settled = await ledger.settle(hold.id, amount * (i % 5) // 3, f"settle-{tag}", org_id=org_id)
        sys.stdout.write(
            json.dumps({"hold": hold.id, "settle": settled.id, "charged": settled.amount}) + "\n"
        )
        sys.stdout.flush()


async def main(url: str, org_id: str, loops: int) -> None:
    db = Database(url)
    ledger = Ledger(db.sessions)
    # A long request still running when the process dies: its hold is certainly left open.
    await ledger.hold(org_id, 123_456, "hold-in-flight")
    await asyncio.gather(*(loop(ledger, org_id, n) for n in range(loops)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
