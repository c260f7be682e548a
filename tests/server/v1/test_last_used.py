"""The last-used writer: uses noted in memory, one UPDATE per key per flush, only ever forward."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server import accounts
from server.db import Database
from server.v1.last_used import LastUsedWriter

T0 = datetime(2026, 6, 1, tzinfo=UTC)


async def _keys(db: Database, n: int) -> tuple[str, list[str]]:
    async with db.session() as s:
        org = await accounts.create_org(s, "Acme")
        ids = [(await accounts.create_api_key(s, org.id, name=f"k{i}")).info.id for i in range(n)]
    return org.id, ids


async def _last_used(db: Database, org_id: str) -> dict[str, datetime | None]:
    async with db.session() as s:
        return {k.id: k.last_used_at for k in await accounts.list_api_keys(s, org_id)}


async def test_many_uses_are_one_update_per_key_per_flush(db: Database) -> None:
    org_id, (a, b, c) = await _keys(db, 3)
    writer = LastUsedWriter(db.sessions)
    for second in range(100):
        writer.record(a, T0 + timedelta(seconds=second))
    writer.record(b, T0 + timedelta(seconds=5))
    writer.record(b, T0)  # out of order: the later time stays
    assert await writer.flush() == 2 and writer.updates == 2
    assert await _last_used(db, org_id) == {
        a: T0 + timedelta(seconds=99),
        b: T0 + timedelta(seconds=5),
        c: None,
    }
    assert await writer.flush() == 0 and writer.updates == 2


async def test_the_time_only_moves_forward(db: Database) -> None:
    """Replicas flush in any order; an older time from a slower one never wins."""
    org_id, (a,) = await _keys(db, 1)
    ahead, behind = LastUsedWriter(db.sessions), LastUsedWriter(db.sessions)
    ahead.record(a, T0 + timedelta(minutes=2))
    behind.record(a, T0 + timedelta(minutes=1))
    await ahead.flush()
    await behind.flush()
    assert await _last_used(db, org_id) == {a: T0 + timedelta(minutes=2)}


async def test_close_writes_what_is_left(db: Database) -> None:
    org_id, (a,) = await _keys(db, 1)
    writer = LastUsedWriter(db.sessions, interval=3600)
    writer.start()
    writer.record(a, T0)
    await writer.aclose()
    assert await _last_used(db, org_id) == {a: T0}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_failed_flush_keeps_the_times(db: Database) -> None:
    org_id, (a,) = await _keys(db, 1)
    writer = LastUsedWriter(db.sessions)
    writer.record(a, T0)
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql("ALTER TABLE api_keys RENAME TO api_keys_away")
    with pytest.raises(Exception):  # noqa: B017 - whichever error the driver raises
        await writer.flush()
    writer.record(a, T0 - timedelta(seconds=1))
    assert writer.pending == 1
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql("ALTER TABLE api_keys_away RENAME TO api_keys")
    assert await writer.flush() == 1
    assert await _last_used(db, org_id) == {a: T0}
