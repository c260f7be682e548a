"""The tier's `max_connections` on adding a connection, through the CLI and the admin API, on
both databases: at the limit the add is refused (exit 1 / 403 `connection_limit`) with the
tier, the limit and the tier that allows more; a downgrade below the count deletes nothing and
only stops further adds; platform connections do not count."""

from __future__ import annotations

import json

import httpx
from sqlalchemy import func, select

from routing.tables import Connection
from server.db import Database
from tests.server.test_cli import run_cli

KEY = "sk-test-0123456789abcdef"


async def add(db_url: str, org: str, name: str) -> tuple[int, dict[str, object]]:
    result = await run_cli(
        db_url,
        "connection",
        "add",
        "--org",
        org,
        "--provider",
        "openai",
        "--name",
        name,
        "--key-stdin",
        "--json",
        input=KEY + "\n",
    )
    return result.exit_code, json.loads(result.output)


async def connections(db: Database) -> int:
    async with db.session() as s:
        return int(
            await s.scalar(select(func.count()).select_from(Connection).where(Connection.org_id.is_not(None)))
            or 0
        )


async def test_the_cli_refuses_a_connection_beyond_the_tier_and_names_the_way_out(
    db: Database, db_url: str
) -> None:
    created = await run_cli(db_url, "org", "create", "acme", "--tier", "free", "--json")
    assert created.exit_code == 0, created.output
    platform = await run_cli(
        db_url,
        "connection",
        "add",
        "--platform",
        "--provider",
        "openai",
        "--key-stdin",
        "--json",
        input=KEY + "\n",
    )
    assert platform.exit_code == 0, platform.output
    assert [(await add(db_url, "acme", n))[0] for n in ("a", "b")] == [0, 0], (
        "free allows 2; platform ones do not count"
    )

    code, refused = await add(db_url, "acme", "c")
    assert code == 1
    error = refused["error"]
    assert isinstance(error, dict) and error["type"] == "connection_limit"
    assert error["message"].startswith(
        "tier free allows 2 connections and this org has 2: delete one (`patchbay connection delete`), "
        "or move to tier starter (5 connections)"
    )
    assert await connections(db) == 2

    # Up to enterprise: no limit. Down to free again: all five kept, none added until under 2.
    assert (await run_cli(db_url, "org", "update", "acme", "--tier", "enterprise")).exit_code == 0
    assert [(await add(db_url, "acme", n))[0] for n in ("c", "d", "e")] == [0, 0, 0]
    assert (await run_cli(db_url, "org", "update", "acme", "--tier", "free")).exit_code == 0
    assert await connections(db) == 5
    code, refused = await add(db_url, "acme", "f")
    assert code == 1 and "tier free allows 2 connections and this org has 5" in str(refused)
    assert "move to tier starter (5 connections)" not in str(refused), "starter would not allow a sixth"
    assert "move to tier pro (25 connections)" in str(refused)


async def test_the_admin_api_answers_403_connection_limit(
    db: Database, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    r = await client.post("/admin/v1/orgs", json={"name": "acme", "tier": "free"}, headers=admin_headers)
    org = r.json()["id"]
    for name in ("a", "b", "c"):
        r = await client.post(
            f"/admin/v1/orgs/{org}/connections",
            json={"provider": "openai", "name": name, "key": KEY},
            headers=admin_headers,
        )
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["type"] == "connection_limit" and "tier free allows 2 connections" in error["message"]
    assert await connections(db) == 2
