"""Reading the request log: newest first, within the window, filtered by status, key and model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from foundation.audit import AuditEvent
from foundation.errors import NotFoundError, RequestError
from routing.config_versions import read_versions
from server import accounts
from server.activity import query
from server.db import Database
from tests.server.activity.rows import add_rows

NOW = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)


async def org_with_keys(db: Database) -> tuple[str, str, str]:
    async with db.session() as s:
        org = await accounts.create_org(s, "Acme")
        other = await accounts.create_org(s, "Other")
        ci = await accounts.create_api_key(s, org.id, name="ci")
        prod = await accounts.create_api_key(s, org.id, name="prod")
    await add_rows(db, other.id, {"api_key_id": prod.info.id}, at=NOW)  # never shown for Acme
    return org.id, ci.info.id, prod.info.id


async def listed(db: Database, org_id: str, **filters: object) -> list[query.LoggedRequest]:
    filters.setdefault("since", NOW - timedelta(hours=24))
    filters.setdefault("until", NOW + timedelta(seconds=1))
    async with db.session() as s:
        return await query.list_requests(s, org_id, **filters)  # type: ignore[arg-type]


async def test_filters_and_order(db: Database) -> None:
    org_id, ci, prod = await org_with_keys(db)
    minute = timedelta(minutes=1)
    await add_rows(
        db,
        org_id,
        {"api_key_id": ci, "model": "default", "served_model": "openai/gpt-4o"},
        at=NOW - 3 * minute,
    )
    await add_rows(
        db,
        org_id,
        {"api_key_id": prod, "model": "fast", "status": 429, "outcome": "error"},
        at=NOW - 2 * minute,
    )
    await add_rows(
        db, org_id, {"api_key_id": ci, "status": 200, "outcome": "error", "model": "default"}, at=NOW - minute
    )
    await add_rows(db, org_id, {"api_key_id": ci, "status": 499, "outcome": "cancelled"}, at=NOW)
    await add_rows(db, org_id, {"api_key_id": ci}, at=NOW - timedelta(days=2))  # outside the window

    everything = await listed(db, org_id)
    assert [r.created_at for r in everything] == [NOW, NOW - minute, NOW - 2 * minute, NOW - 3 * minute]
    assert [r.key_name for r in everything] == ["ci", "ci", "prod", "ci"]
    assert [r.status for r in await listed(db, org_id, status="error")] == [200, 429]
    assert [r.status for r in await listed(db, org_id, status="ok")] == [200]
    assert [r.status for r in await listed(db, org_id, status="cancelled")] == [499]
    assert [r.model for r in await listed(db, org_id, status="429")] == ["fast"]
    assert len(await listed(db, org_id, key="prod")) == len(await listed(db, org_id, key=prod)) == 1
    assert len(await listed(db, org_id, key="nobody")) == 0
    assert len(await listed(db, org_id, model="default")) == 2
    assert len(await listed(db, org_id, model="openai/gpt-4o")) == 1  # the served model matches too
    assert [r.created_at for r in await listed(db, org_id, limit=2)] == [NOW, NOW - minute]
    assert len(await listed(db, org_id, since=NOW - timedelta(days=3))) == 5


@pytest.mark.parametrize("status", ["failed", "1000", "42", ""])
async def test_bad_filters_are_request_errors(db: Database, status: str) -> None:
    org_id, _, _ = await org_with_keys(db)
    if status:
        with pytest.raises(RequestError, match="status must be"):
            await listed(db, org_id, status=status)
    for limit in (0, query.MAX_LIMIT + 1):
        with pytest.raises(RequestError, match="limit must be"):
            await listed(db, org_id, limit=limit)


async def test_content_logging_setting_is_audited_and_bumps_the_config_version(db: Database) -> None:
    org_id, _, _ = await org_with_keys(db)
    async with db.session() as s:
        assert (await query.get_settings(s, "Acme")).content_logging is False
        before = (await read_versions(s, [org_id])).get(org_id, 0)
    for enabled in (True, True, False):
        async with db.session() as s:
            assert (
                await query.set_content_logging(s, "Acme", enabled, actor="tester")
            ).content_logging is enabled
    async with db.session() as s:
        assert (await read_versions(s, [org_id]))[org_id] == before + 2  # the repeated True changed nothing
        events = list(
            await s.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == "org.content_logging")
                .order_by(AuditEvent.created_at)
            )
        )
        with pytest.raises(NotFoundError):
            await query.get_settings(s, "nope")
    assert [(e.actor, e.target_id, e.details) for e in events] == [
        ("tester", org_id, {"from": False, "to": True}),
        ("tester", org_id, {"from": True, "to": False}),
    ]
