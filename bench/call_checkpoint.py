"""What phone calls' checkpoints cost a worker: their `voice_handovers` rows rewritten.

Each Twilio media stream's row is rewritten after every reply (docs/voice.md, "A worker that
dies"). A worker writes the rows of all its calls whose conversation changed in one transaction
(`server.realtime.handover.save_checkpoints`, every half second); this times that against one
transaction per call (`handover.save`, as a final handover is written), with `--calls` calls of
a conversation of `--items` items of about 100 characters each, on the embedded SQLite or on
PostgreSQL (`--database-url`, an empty database). CPU is this process's, the database driver's
thread included; PostgreSQL's own server work is not in it.

    .venv/bin/python bench/call_checkpoint.py [--calls 300] [--items 20] [--rounds 5] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


async def run(calls: int, items: int, rounds: int, database_url: str | None) -> None:
    from foundation.db import utcnow
    from foundation.tiers import Tier
    from server import accounts
    from server.accounts import Principal
    from server.db import Database
    from server.realtime import handover
    from server.settings import Settings

    settings = Settings(
        data_dir=Path(tempfile.mkdtemp(prefix="checkpoint-bench-")), database_url=database_url
    )
    db = Database(settings.resolved_database_url)
    await db.upgrade()
    async with db.session() as session:
        org = await accounts.create_org(session, "Bench", Tier.PRO)
    principal = Principal(key_id="key_bench", org_id=org.id, agent_id=None)
    said = [
        {"kind": "message", "role": "user" if n % 2 == 0 else "assistant", "text": "word " * 20}
        for n in range(items)
    ]
    lifetime = settings.voice_max_session_seconds + handover.HANDOVER_SECONDS

    def checkpoint(n: int) -> handover.Handover:
        return handover.Handover(f"bench-{n}", f"CA{n}", principal, None, {}, said)

    def timed(what: str, wall: float, cpu: float) -> None:
        print(f"{what}: {wall * 1000:.0f} ms, {cpu / calls * 1e6:.0f} us CPU a call", flush=True)

    expires_at = utcnow() + timedelta(seconds=lifetime)
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        for n in range(calls):
            await handover.save(db, checkpoint(n), utcnow())
        timed(f"{calls} rows, one transaction each", time.perf_counter() - wall, time.process_time() - cpu)
        wall, cpu = time.perf_counter(), time.process_time()
        await handover.save_checkpoints(db, [checkpoint(n) for n in range(calls)], expires_at)
        timed(f"{calls} rows, one transaction", time.perf_counter() - wall, time.process_time() - cpu)
    await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--items", type=int, default=20, help="items in each call's conversation")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--database-url", default=None, help="PostgreSQL (an empty database); SQLite if unset"
    )
    args = parser.parse_args()
    asyncio.run(run(args.calls, args.items, args.rounds, args.database_url))


if __name__ == "__main__":
    main()
