"""The retention sweeper deletes rows older than the retention, and only those, on a clock the test sets."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from server import accounts
from server.accounts import Principal
from server.activity.retention import RetentionSweeper
from server.activity.table import RequestLogRow
from server.db import Database
from server.realtime import handover
from server.tables import VoiceHandover
from tests.server.activity.rows import add_rows

NOW = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)


async def remaining(db: Database) -> set[int]:
    async with db.session() as s:
        return set(await s.scalars(select(RequestLogRow.id)))


def sweeper(db: Database, days: int, *, batch: int = 5000) -> RetentionSweeper:
    return RetentionSweeper(db.sessions, retention_days=days, batch=batch, clock=lambda: NOW)


async def test_rows_past_the_retention_go_and_the_rest_stay(db: Database) -> None:
    old = await add_rows(db, "org_a", *({} for _ in range(5)), at=NOW - timedelta(days=30, seconds=1))
    old += await add_rows(db, "org_b", {}, at=NOW - timedelta(days=400))
    kept = await add_rows(db, "org_a", {}, at=NOW - timedelta(days=29, hours=23))
    kept += await add_rows(db, "org_b", {}, at=NOW - timedelta(minutes=1))
    sweep = sweeper(db, 30, batch=2)  # several batches
    assert sweep.cutoff() == NOW - timedelta(days=30)
    assert await sweep.sweep_once() == len(old)
    assert await remaining(db) == set(kept)
    assert await sweep.sweep_once() == 0


async def test_several_sweepers_at_once_delete_each_row_once(db: Database) -> None:
    await add_rows(db, "org_a", *({} for _ in range(40)), at=NOW - timedelta(days=31))
    kept = await add_rows(db, "org_a", {}, at=NOW - timedelta(days=1))
    deleted = await asyncio.gather(*(sweeper(db, 30, batch=7).sweep_once() for _ in range(3)))
    assert sum(deleted) == 40
    assert await remaining(db) == set(kept)


async def test_retention_zero_keeps_nothing(db: Database) -> None:
    await add_rows(db, "org_a", {}, {}, at=NOW - timedelta(seconds=1))
    assert await sweeper(db, 0).sweep_once() == 2
    assert await remaining(db) == set()


async def test_expired_phone_call_handovers_go_and_live_ones_stay(db: Database) -> None:
    async with db.session() as s:
        org = await accounts.create_org(s, "Acme Phones")
    principal = Principal(key_id="key_1", org_id=org.id, agent_id=None)
    lifetime = timedelta(seconds=handover.HANDOVER_SECONDS)
    for handover_id, written_at in (
        ("expired", NOW - lifetime - timedelta(seconds=1)),
        ("live", NOW - lifetime),
    ):
        # Written oldest first, so no write deletes the other: only the sweep does.
        await handover.save(db, handover.Handover(handover_id, "CA1", principal, None, {}, []), written_at)
    assert await sweeper(db, 30).expire_handovers() == 1
    async with db.session() as s:
        assert list(await s.scalars(select(VoiceHandover.id))) == ["live"]
