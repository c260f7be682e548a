"""What one platform-billed segment costs the ledger: `Ledger.hold` then `Ledger.settle`, in-process.

For each backend (SQLite as embedded: a file database in WAL mode, through `server.db.Database`;
PostgreSQL: a scratch database on `--pg`, created, migrated and dropped) it runs `--ops` hold+settle
pairs one after another (c=1, the request path's own cost) and prints p50/p95 per op, the
statements each op sends (counted by a SQLAlchemy `before_cursor_execute` listener; BEGIN and
COMMIT are not statements there, so "+2" round trips each on PostgreSQL), this process's CPU
time per pair (steadier than wall time on a shared machine; for SQLite it includes the driver's
thread, for PostgreSQL not the server's), the floor (one trivial write transaction), and the pairs per
second with `--concurrency` callers at once on one org (the worst case: one lock).

    .venv/bin/python bench/ledger.py [--ops 500] [--concurrency 50] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event, text  # noqa: E402

from billing.ledger import Ledger  # noqa: E402
from server.db import Database  # noqa: E402

PG_ADMIN = "postgresql://root@127.0.0.1:5432/test"


class Counter:
    """Statements sent through an engine since the last `take`."""

    def __init__(self, db: Database) -> None:
        self.n = 0
        event.listen(db.engine.sync_engine, "before_cursor_execute", self._count)

    def _count(self, *_: Any) -> None:
        self.n += 1

    def take(self) -> int:
        n, self.n = self.n, 0
        return n


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def run(db: Database, ops: int, concurrency: int) -> dict[str, Any]:
    ledger = Ledger(db.sessions)
    counter = Counter(db)
    # Before issue 14's speed work `settle` took no `held`: the same bench then measures that code.
    hint = "held" in inspect.signature(ledger.settle).parameters

    def held(entry: Any) -> dict[str, int]:
        return {"held": entry.amount} if hint else {}

    floor_ms: list[float] = []
    for _ in range(ops):  # the floor: one write transaction of one trivial statement
        t0 = time.perf_counter()
        async with db.sessions() as session, session.begin():
            await session.execute(text("UPDATE alembic_version SET version_num = version_num"))
        floor_ms.append((time.perf_counter() - t0) * 1000)
    org = "org_" + secrets.token_hex(6)
    await ledger.grant(org, 10**12, "grant")
    for i in range(20):  # warm the pool and the statement caches
        h = await ledger.hold(org, 1000, f"w{i}", request_id=f"w{i}")
        await ledger.settle(h.id, 500, f"w{i}:s", org_id=org, api_key_id="key_bench", **held(h))
    counter.take()
    hold_ms: list[float] = []
    settle_ms: list[float] = []
    stmts = {"hold": 0, "settle": 0}
    cpu0 = time.process_time()
    for i in range(ops):
        t0 = time.perf_counter()
        h = await ledger.hold(org, 1000, f"h{i}", request_id=f"r{i}", details={"segment": "chat"})
        t1 = time.perf_counter()
        stmts["hold"] += counter.take()
        await ledger.settle(
            h.id, 700, f"h{i}:settle", org_id=org, api_key_id="key_bench", details={"x": 1}, **held(h)
        )
        t2 = time.perf_counter()
        stmts["settle"] += counter.take()
        hold_ms.append((t1 - t0) * 1000)
        settle_ms.append((t2 - t1) * 1000)
    cpu_us = (time.process_time() - cpu0) / ops * 1e6

    async def pair(i: int) -> None:
        h = await ledger.hold(org, 1000, f"c{i}", request_id=f"c{i}")
        await ledger.settle(h.id, 700, f"c{i}:settle", org_id=org, api_key_id="key_bench", **held(h))

    total = max(ops, concurrency * 4)
    sem = asyncio.Semaphore(concurrency)

    async def limited(i: int) -> None:
        async with sem:
            await pair(i)

    t0 = time.perf_counter()
    await asyncio.gather(*(limited(i) for i in range(total)))
    rate = total / (time.perf_counter() - t0)
    balance = await ledger.balance(org)
    assert balance.held == 0 and balance.open_holds == 0, balance
    return {
        "floor_p50": statistics.median(floor_ms),
        "cpu_us": cpu_us,
        "hold_p50": statistics.median(hold_ms),
        "hold_p95": pct(hold_ms, 0.95),
        "settle_p50": statistics.median(settle_ms),
        "settle_p95": pct(settle_ms, 0.95),
        "pair_p50": statistics.median(h + s for h, s in zip(hold_ms, settle_ms, strict=True)),
        "hold_stmts": stmts["hold"] / ops,
        "settle_stmts": stmts["settle"] / ops,
        "pairs_per_s_c": rate,
    }


async def on_sqlite(ops: int, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite+aiosqlite:///{tmp}/bench.db")
        try:
            await db.upgrade()
            return await run(db, ops, concurrency)
        finally:
            await db.dispose()


async def on_postgres(ops: int, concurrency: int, admin: str) -> dict[str, Any]:
    import asyncpg

    name = "pb_bench_" + secrets.token_hex(4)
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + name
    db = Database(url)
    try:
        await db.upgrade()
        return await run(db, ops, concurrency)
    finally:
        await db.dispose()
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=500, help="hold+settle pairs timed one at a time")
    parser.add_argument(
        "--concurrency", type=int, default=50, help="callers at once for the throughput figure"
    )
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--pg", default=os.environ.get("PATCHBAY_TEST_PG_DSN", PG_ADMIN), help="admin DSN")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}  cpus: {os.cpu_count()}")
    for backend in args.backends.split(","):
        if backend == "sqlite":
            r = asyncio.run(on_sqlite(args.ops, args.concurrency))
        else:
            r = asyncio.run(on_postgres(args.ops, args.concurrency, args.pg))
        print(
            f"{backend:8} floor p50 {r['floor_p50']:.3f} ms | hold p50 {r['hold_p50']:.3f} p95 {r['hold_p95']:.3f} ms ({r['hold_stmts']:.1f} stmts) | "
            f"settle p50 {r['settle_p50']:.3f} p95 {r['settle_p95']:.3f} ms ({r['settle_stmts']:.1f} stmts) | "
            f"pair p50 {r['pair_p50']:.3f} ms, CPU {r['cpu_us']:.0f} us | c={args.concurrency}: {r['pairs_per_s_c']:.0f} pairs/s"
        )


if __name__ == "__main__":
    main()
