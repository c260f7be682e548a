"""`patchbay requests`: the request log on the command line, as a table and as JSON."""

from __future__ import annotations

import json
from datetime import timedelta

from foundation.db import utcnow
from server import accounts
from server.db import Database
from tests.server.activity.rows import add_rows
from tests.server.test_cli import run_cli


async def test_requests_json_and_table(db: Database, db_url: str) -> None:
    async with db.session() as s:
        org = await accounts.create_org(s, "acme")
        key = await accounts.create_api_key(s, org.id, name="ci")
    now = utcnow()
    await add_rows(
        db,
        org.id,
        {"api_key_id": key.info.id, "model": "default", "connection": "openai:main", "latency_ms": 12.3},
        at=now - timedelta(minutes=2),
    )
    await add_rows(
        db,
        org.id,
        {
            "api_key_id": key.info.id,
            "model": "fast",
            "status": 429,
            "outcome": "error",
            "error_type": "rate_limit_exceeded",
        },
        at=now - timedelta(minutes=1),
    )

    result = await run_cli(db_url, "requests", "--org", "acme", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["org_id"] == org.id
    rows = body["requests"]
    assert [(r["status"], r["key_name"], r["model"], r["error_type"]) for r in rows] == [
        (429, "ci", "fast", "rate_limit_exceeded"),
        (200, "ci", "default", None),
    ]
    assert rows[1]["connection"] == "openai:main" and rows[1]["latency_ms"] == 12.3
    assert {"route", "surface", "request_id", "input_tokens", "content", "created_at"} <= set(rows[0])

    errors = json.loads(
        (await run_cli(db_url, "requests", "--org", "acme", "--status", "error", "--json")).output
    )
    assert [r["status"] for r in errors["requests"]] == [429]

    table = await run_cli(db_url, "requests", "--org", "acme", "--key", "ci", "--model", "default")
    assert table.exit_code == 0
    lines = table.output.splitlines()
    assert lines[1].split() == [
        "time",
        "(UTC)",
        "surface",
        "key",
        "model",
        "status",
        "error",
        "latency",
        "served",
        "by",
    ]
    assert lines[2].split()[2:] == [
        "chat.completions",
        "ci",
        "default",
        "200",
        "-",
        "12",
        "ms",
        "openai:main",
    ]
    assert len(lines) == 3

    bad = await run_cli(db_url, "requests", "--org", "acme", "--status", "broken", "--json")
    assert bad.exit_code == 1 and "status must be" in json.loads(bad.output)["error"]["message"]
    unknown = await run_cli(db_url, "requests", "--org", "nope", "--json")
    assert unknown.exit_code == 1 and json.loads(unknown.output)["error"]["type"] == "not_found"
    assert (await run_cli(db_url, "requests", "--org", "acme", "--limit", "0")).exit_code == 2
