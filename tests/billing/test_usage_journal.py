"""Usage rows journaled before `record` returns (billing/usage_journal.py): a dead process's
journal is written into the database once, however often it is replayed, and whatever of it
was already written."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import orjson
from sqlalchemy import func, select

from billing.tables import UsageRecord
from billing.usage import UsageRecorder, UsageSegment, new_usage_recorder
from billing.usage_journal import UsageJournal, write_rows
from server.db import Database
from tests.billing.test_usage import segment
from tests.billing.usage_worker import segment as worker_segment

ROOT = Path(__file__).resolve().parents[2]


async def rows(db: Database, org_id: str) -> list[UsageRecord]:
    async with db.session() as s:
        return list((await s.scalars(select(UsageRecord).where(UsageRecord.org_id == org_id))).all())


async def count(db: Database) -> int:
    async with db.session() as s:
        return int((await s.scalar(select(func.count()).select_from(UsageRecord))) or 0)


def logs(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.log"))


def test_a_line_reads_back_as_the_segment_it_was() -> None:
    original = segment("org_1")
    line = orjson.loads(orjson.dumps(original))
    again = UsageSegment.from_line({**line, "a_later_field": 1})
    assert again == original and again.id == original.id and again.at == original.at
    assert again.row_values()[1] == original.row_values()[1]


async def test_replaying_a_dead_journal_twice_writes_each_row_once(db: Database, tmp_path: Path) -> None:
    directory = tmp_path / "usage-journal"
    segments = [segment("org_1"), segment("org_1"), segment("org_2")]
    dead = UsageJournal(directory)
    for s in segments:
        dead.append(s)
    dead.close(idle=False)  # what a killed process leaves: its lines, unlocked
    [path] = logs(directory)
    with path.open("ab") as file:
        file.write(b'{"not": "a segment"}\n')  # skipped (and counted), not a reason to stop
        file.write(b'{"org_id": "org_1", "segm')  # a line torn by a machine crash: never acknowledged
    kept = tmp_path / "copy"
    shutil.copy(path, kept)
    await write_rows(db.sessions, [segments[0].row_values()])  # written before the process died

    recorder = new_usage_recorder(db.sessions)
    assert await recorder.replay_orphans(directory) == 1
    assert logs(directory) == []
    shutil.copy(kept, path)  # the same journal again (another process replayed it meanwhile)
    assert await recorder.replay_orphans(directory) == 1
    assert await recorder.replay_orphans(directory) == 0

    written = await rows(db, "org_1") + await rows(db, "org_2")
    assert sorted(r.id for r in written) == sorted(s.id for s in segments)
    assert await count(db) == len(segments)
    by_id = {r.id: r for r in written}
    for s in segments:
        expected = s.row_values()[1]
        assert {k: getattr(by_id[s.id], k) for k in expected} == expected


async def test_a_serving_recorder_journals_before_it_writes(db: Database, tmp_path: Path) -> None:
    directory = tmp_path / "usage-journal"
    recorder = new_usage_recorder(db.sessions, flush_interval=3600)
    await recorder.open_journal(directory)
    first, second = segment("org_1"), segment("org_1")
    recorder.record(first)
    recorder.record(second)
    [path] = logs(directory)
    assert [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()] == [first.id, second.id]
    assert await rows(db, "org_1") == []

    assert await recorder.flush() == 2
    assert path.stat().st_size == 0  # every line written: the file is emptied
    assert {r.id for r in await rows(db, "org_1")} == {first.id, second.id}
    recorder.record(segment("org_1"))
    await recorder.aclose()  # writes the rest and removes the file
    assert logs(directory) == [] and len(await rows(db, "org_1")) == 3


async def test_a_killed_process_rows_are_written_by_the_next_one(db: Database, tmp_path: Path) -> None:
    directory, total = tmp_path / "usage-journal", 40
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "tests/billing/usage_worker.py"),
        db.url,
        str(directory),
        "org_k",
        str(total),
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert await worker.wait() == -9
    assert len(await rows(db, "org_k")) == total // 2  # the second half is only in its journal
    assert len(logs(directory)) == 1

    recorder = new_usage_recorder(db.sessions, flush_interval=3600)
    await recorder.open_journal(directory)  # serving starts: the dead journal first
    await recorder.aclose()
    written = await rows(db, "org_k")
    assert sorted(r.request_id or "" for r in written) == sorted(f"r-{i}" for i in range(total))
    expected = {f"r-{i}": worker_segment("org_k", i).cost_micro_usd for i in range(total)}
    assert {r.request_id: r.cost_micro_usd for r in written} == expected
    assert logs(directory) == []


async def test_segments_past_a_full_buffer_are_kept_in_the_journal(db: Database, tmp_path: Path) -> None:
    """The database away long enough to fill the buffer: further segments are journaled only,
    and written (by the orphan replay) once a flush succeeds again."""
    directory = tmp_path / "usage-journal"
    recorder = UsageRecorder(db.sessions, name="usage", flush_interval=3600, max_pending=2, keyed=True)
    await recorder.open_journal(directory)
    segments = [segment("org_1") for _ in range(5)]
    for s in segments:
        recorder.record(s)
    assert recorder.pending == 2 and recorder.dropped == 0
    assert await recorder.flush() == 2
    assert sorted(r.id for r in await rows(db, "org_1")) == sorted(s.id for s in segments)
    [current] = logs(directory)
    assert current.stat().st_size == 0  # the spilled file was replayed and removed; a new one serves
    await recorder.aclose()
    assert logs(directory) == [] and await count(db) == 5
