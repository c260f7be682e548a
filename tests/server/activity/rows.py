"""Request-log rows written straight to the table, for tests that read or sweep the log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from server.activity.table import RequestLogRow
from server.db import Database


async def add_rows(db: Database, org_id: str, *rows: dict[str, Any], at: datetime) -> list[int]:
    """One row per dict (its columns over plain defaults), created at `at` unless it says `created_at`."""
    ids = []
    async with db.session() as s:
        for values in rows:
            row = RequestLogRow(
                **{
                    "org_id": org_id,
                    "created_at": at,
                    "surface": "chat.completions",
                    "status": 200,
                    "outcome": "ok",
                    **values,
                }
            )
            s.add(row)
            await s.flush()
            ids.append(row.id)
    return ids
