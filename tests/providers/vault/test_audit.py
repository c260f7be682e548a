"""The decrypt-audit writer over a real database: successful decrypts are coalesced per batch.

The buffering itself (batches, wake-ups, retries, drops) is tested in tests/foundation/test_audit.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select

from foundation.audit import AuditEntry, AuditEvent
from providers.vault.audit import DecryptAuditWriter
from server.db import Database


def entry(i: int) -> AuditEntry:
    return AuditEntry(
        org_id="org_a",
        actor="system",
        action="secret.decrypt",
        target_type="connection",
        target_id=f"conn_{i}",
        details={"purpose": "test"},
    )


async def _rows(db: Database) -> list[AuditEvent]:
    async with db.session() as s:
        return list((await s.scalars(select(AuditEvent).order_by(AuditEvent.target_id))).all())


async def test_record_is_buffered_until_flush(db: Database) -> None:
    writer = DecryptAuditWriter(db.sessions)
    for i in range(3):
        writer.record(entry(i))
    assert writer.pending == 3 and await _rows(db) == []
    assert await writer.flush() == 3
    rows = await _rows(db)
    assert [r.target_id for r in rows] == ["conn_0", "conn_1", "conn_2"]
    # Each row stands for its reveals: one here (coalescing is per identical target and details).
    assert rows[0].details == {"purpose": "test", "count": 1} and rows[0].action == "secret.decrypt"
    assert await writer.flush() == 0


async def test_identical_decrypts_in_a_batch_become_one_row_with_a_count(db: Database) -> None:
    writer = DecryptAuditWriter(db.sessions)
    first = entry(1)
    repeats = [replace(first, at=first.at + timedelta(milliseconds=i)) for i in range(1, 4)]
    failed = replace(
        first, action="secret.decrypt_failed", details={"purpose": "test", "error": "DecryptError"}
    )
    other_purpose = replace(first, details={"purpose": "verify"})
    for e in [first, *repeats, failed, failed, other_purpose, entry(2)]:
        writer.record(e)
    assert await writer.flush() == 8
    rows = await _rows(db)
    decrypts = sorted(
        (
            (r.target_id, r.details["purpose"], r.details["count"])
            for r in rows
            if r.action == "secret.decrypt"
        ),
    )
    assert decrypts == [("conn_1", "test", 4), ("conn_1", "verify", 1), ("conn_2", "test", 1)]
    [merged] = [r for r in rows if r.details.get("count") == 4]
    assert merged.created_at == first.at
    assert merged.details["last_at"] == repeats[-1].at.isoformat()
    # Failures are never merged: each is its own row.
    assert [r.action for r in rows].count("secret.decrypt_failed") == 2
