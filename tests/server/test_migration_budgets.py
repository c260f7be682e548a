"""Migration 0012_budgets on both databases: a budget the legacy import stored in
`org_ai_settings.monthly_budget_usd` becomes the enforced `spend_caps` budget, exactly, and
the downgrade puts it back."""

from __future__ import annotations

from sqlalchemy import text

from billing.spend_store import get_cap
from server.db import Database


async def test_stored_legacy_budgets_move_into_spend_caps_exactly(db_url: str) -> None:
    db = Database(db_url)
    try:
        await db.upgrade("0010")
        async with db.engine.begin() as conn:
            for org_id, budget in (("org_a", "0.57"), ("org_b", "1234.10"), ("org_c", None)):
                await conn.execute(
                    text(
                        "INSERT INTO orgs (id, name, tier, created_at, content_logging) VALUES (:id, :id, 'free', CURRENT_TIMESTAMP, false)"
                    ),
                    {"id": org_id},
                )
                await conn.execute(
                    text(
                        "INSERT INTO org_ai_settings (org_id, routing, byok_enabled, monthly_budget_usd, updated_at) VALUES (:id, '{}', false, :b, CURRENT_TIMESTAMP)"
                    ),
                    {"id": org_id, "b": budget},
                )
        await db.upgrade()
        async with db.session() as s:
            assert await get_cap(s, "org_a") == 570_000  # not 569_999: no float on the way
            assert await get_cap(s, "org_b") == 1_234_100_000
            assert await get_cap(s, "org_c") is None
        await db.downgrade("0010")
        async with db.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text("SELECT org_id, monthly_budget_usd FROM org_ai_settings ORDER BY org_id")
                )
            ).all()
        assert [(org_id, None if b is None else f"{float(b):.2f}") for org_id, b in rows] == [
            ("org_a", "0.57"),
            ("org_b", "1234.10"),
            ("org_c", None),
        ]
    finally:
        await db.dispose()
