"""What a phone call's checkpoint costs: one rewrite of its `voice_handovers` row.

Each Twilio media stream rewrites its call's row after every reply (docs/voice.md, "A worker
that dies"). This times `server.realtime.handover.save` as the checkpoint writer calls it, with
a conversation of `--items` items of about 100 characters each, on the embedded SQLite or on
PostgreSQL (`--database-url`, an empty database): `--calls` rows written at once (calls whose
replies end together), then each rewritten one after another. CPU is this process's, the
database driver's thread included; PostgreSQL's own server work is not in it.

    .venv/bin/python bench/call_checkpoint.py [--calls 300] [--items 20] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


async def run(calls: int, items: int, database_url: str | None) -> None:
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

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(
        *(handover.save(db, checkpoint(n), utcnow(), lifetime=lifetime) for n in range(calls))
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"{calls} calls written at once: {wall * 1000:.0f} ms in all, {cpu / calls * 1000:.2f} ms CPU a write"
    )
    wall, cpu = time.perf_counter(), time.process_time()
    for n in range(calls):
        await handover.save(db, checkpoint(n), utcnow(), lifetime=lifetime)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"{calls} rewrites one after another: {wall / calls * 1000:.2f} ms each, "
        f"{cpu / calls * 1000:.2f} ms CPU each"
    )
    await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--items", type=int, default=20, help="items in each call's conversation")
    parser.add_argument(
        "--database-url", default=None, help="PostgreSQL (an empty database); SQLite if unset"
    )
    args = parser.parse_args()
    asyncio.run(run(args.calls, args.items, args.database_url))


if __name__ == "__main__":
    main()
