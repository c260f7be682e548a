"""Migration 0006 on a database that holds keys: live keys of one org sharing a name are told
apart (the oldest keeps it) so names can be unique; unnamed and revoked keys are left alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import String, column, insert, select, table

from foundation.db import UTCDateTime
from server.db import Database

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ORGS = table(
    "orgs",
    column("id", String),
    column("name", String),
    column("tier", String),
    column("created_at", UTCDateTime()),
)
KEYS = table(
    "api_keys",
    column("id", String),
    column("org_id", String),
    column("name", String),
    column("prefix", String),
    column("key_hash", String),
    column("created_at", UTCDateTime()),
    column("revoked_at", UTCDateTime()),
)


async def test_duplicate_live_names_are_suffixed_with_their_prefix(db_url: str) -> None:
    db = Database(db_url)
    long = "x" * 128
    keys = [("ci", None), ("ci", None), ("ci", T0), (None, None), (None, None), (long, None), (long, None)]
    try:
        await db.upgrade("0004")
        async with db.engine.begin() as conn:
            await conn.execute(insert(ORGS).values(id="org_a", name="acme", tier="free", created_at=T0))
            await conn.execute(
                insert(KEYS),
                [
                    {
                        "id": f"key_{n}",
                        "org_id": "org_a",
                        "name": name,
                        "prefix": f"pb-prefix{n}",
                        "key_hash": "0" * 64,
                        "created_at": T0 + timedelta(seconds=n),
                        "revoked_at": revoked,
                    }
                    for n, (name, revoked) in enumerate(keys)
                ],
            )
        await db.upgrade()
        async with db.engine.connect() as conn:
            names = dict((await conn.execute(select(KEYS.c.id, KEYS.c.name))).all())
    finally:
        await db.dispose()
    assert names == {
        "key_0": "ci",
        "key_1": "ci pb-prefix1",
        "key_2": "ci",
        "key_3": None,
        "key_4": None,
        "key_5": long,
        "key_6": "x" * 117 + " pb-prefix6",
    }
    assert len(names["key_6"]) == 128
