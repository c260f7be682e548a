"""Isolation: every admin route, under every role, pointed at another org or at another org's
objects, is refused exactly as if the thing did not exist: same status, same wording (bar the
name asked for), and the same database work, so neither the answer nor its timing says
whether it exists. The /v1 surface is held to the same rule for refs and agents."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from server.access.policy import ROUTE_PERMISSIONS
from server.access.roles import Role
from server.services import Services
from tests.server.access.conftest import OPERATOR, bearer, mint_token

BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/connections"): {"provider": "openai", "name": "x", "key": "sk-0123456789abcdef"},
    ("PATCH", "/connections/{ref}"): {"enabled": True},
    ("PUT", "/connections/{ref}/key"): {"key": "sk-0123456789abcdef"},
    ("PUT", "/connections-order"): {"order": []},
    ("POST", "/agents"): {"name": "x"},
    ("PATCH", "/agents/{name}"): {"default_model": None},
    ("PUT", "/routing"): {"chains": {}},
    ("POST", "/config/rollback"): {"to_version": 1},
    ("POST", "/api-keys"): {"name": "x"},
    ("POST", "/admin-tokens"): {"role": "viewer"},
    ("POST", "/invites"): {"email": "x@example.com", "role": "viewer"},
    ("PUT", "/request-log/settings"): {"content_logging": False},
}


@contextmanager
def statements(app: FastAPI) -> Iterator[list[str]]:
    """The SQL statements the app runs inside the block."""
    seen: list[str] = []
    engine = app.state.services.db.engine.sync_engine

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # The credential's own bookkeeping (at most once a minute) says nothing about the target.
        if not statement.startswith("UPDATE org_admin_tokens SET last_used_at"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def _same_refusal(
    app: FastAPI,
    client: httpx.AsyncClient,
    method: str,
    theirs: str,
    nobody: str,
    names: tuple[str, str],
    headers: dict[str, str],
    body: Any,
) -> None:
    with statements(app) as theirs_sql:
        a = await client.request(method, theirs, json=body, headers=headers)
    with statements(app) as nobody_sql:
        b = await client.request(method, nobody, json=body, headers=headers)
    assert a.status_code == b.status_code and a.status_code in (403, 404), (
        method,
        theirs,
        a.status_code,
        a.text,
    )
    assert a.json()["error"]["type"] == b.json()["error"]["type"]
    assert a.json()["error"]["message"].replace(names[0], "<id>") == b.json()["error"]["message"].replace(
        names[1], "<id>"
    )
    assert len(theirs_sql) == len(nobody_sql), (method, theirs)


async def _org(client: httpx.AsyncClient, name: str) -> dict[str, str]:
    org = (await client.post("/admin/v1/orgs", json={"name": name}, headers=OPERATOR)).json()
    base = f"/admin/v1/orgs/{org['id']}"
    conn = await client.post(
        f"{base}/connections",
        json={"provider": "openai", "name": f"{name}-conn", "key": "sk-0123456789abcdef"},
        headers=OPERATOR,
    )
    lab = await client.post(
        f"{base}/connections",
        json={
            "provider": "openai_compatible",
            "name": f"{name}-lab",
            "base_url": "https://llm.example.com/v1",
            "models": ["m1"],
        },
        headers=OPERATOR,
    )
    assert conn.status_code == lab.status_code == 201, (conn.text, lab.text)
    assert (
        await client.post(
            f"{base}/agents",
            json={"name": f"{name}-bot", "default_model": "openai/gpt-4o-mini"},
            headers=OPERATOR,
        )
    ).status_code == 201
    key = (await client.post(f"{base}/api-keys", json={"name": f"{name}-key"}, headers=OPERATOR)).json()
    token = await mint_token(client, org["id"], "viewer")
    invite = (
        await client.post(
            f"{base}/invites", json={"email": f"{name}@example.com", "role": "viewer"}, headers=OPERATOR
        )
    ).json()
    return {
        "id": org["id"],
        "name": name,
        "ref": conn.json()["profile_id"],
        "agent": f"{name}-bot",
        "key_id": key["id"],
        "key": key["key"],
        "token_id": token["id"],
        "invite": invite["id"],
        "lab": f"{name}-lab",
    }


def _fill(template: str, org: str, objects: dict[str, str]) -> str:
    path = template.replace("{org}", org)
    for param, value in objects.items():
        path = path.replace("{" + param + "}", value)
    return path


@pytest.mark.parametrize("role", list(Role))
async def test_another_orgs_routes_answer_like_missing_ones(
    app: FastAPI, client: httpx.AsyncClient, role: Role
) -> None:
    mine, theirs = await _org(client, "alpha"), await _org(client, "beta")
    headers = bearer(await mint_token(client, mine["id"], role.value))
    objects = {
        "ref": theirs["ref"],
        "name": theirs["agent"],
        "key_id": theirs["key_id"],
        "token_id": theirs["token_id"],
        "user_id": "usr_x",
    }
    checked = 0
    for (method, template), _permission in ROUTE_PERMISSIONS.items():
        if "{org}" not in template:
            continue
        body = BODIES.get((method, template.removeprefix("/admin/v1/orgs/{org}")))
        await _same_refusal(
            app,
            client,
            method,
            _fill(template, theirs["id"], objects),
            _fill(template, "org_0000000000000000", objects),
            (theirs["id"], "org_0000000000000000"),
            headers,
            body,
        )
        await _same_refusal(
            app,
            client,
            method,
            _fill(template, theirs["name"], objects),
            _fill(template, "gamma", objects),
            (theirs["name"], "gamma"),
            headers,
            body,
        )
        checked += 1
    assert checked >= 25


async def test_another_orgs_objects_under_my_org_answer_like_missing_ones(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    mine, theirs = await _org(client, "alpha"), await _org(client, "beta")
    owner = bearer(await mint_token(client, mine["id"], "owner"))
    base = f"/admin/v1/orgs/{mine['id']}"
    cases = [
        ("GET", "/connections/{ref}", "ref", theirs["ref"], "openai:nosuch-conn"),
        ("PATCH", "/connections/{ref}", "ref", theirs["ref"], "openai:nosuch-conn"),
        ("PUT", "/connections/{ref}/key", "ref", theirs["ref"], "openai:nosuch-conn"),
        ("POST", "/connections/{ref}/revoke", "ref", theirs["ref"], "openai:nosuch-conn"),
        ("POST", "/connections/{ref}/test", "ref", theirs["ref"], "openai:nosuch-conn"),
        ("DELETE", "/connections/{ref}", "ref", theirs["ref"], "openai:nosuch-conn"),
        ("PATCH", "/agents/{name}", "name", theirs["agent"], "nosuch-bot"),
        ("DELETE", "/agents/{name}", "name", theirs["agent"], "nosuch-bot"),
        ("DELETE", "/api-keys/{key_id}", "key_id", theirs["key_id"], "key_00000000000000000000"),
        ("DELETE", "/admin-tokens/{token_id}", "token_id", theirs["token_id"], "tok_00000000000000000000"),
        ("DELETE", "/members/{user_id}", "user_id", "usr_11111111111111111111", "usr_00000000000000000000"),
    ]
    for headers in (owner, OPERATOR):
        for method, template, param, their_id, missing in cases:
            body = BODIES.get((method, template))
            theirs_path = base + template.replace("{" + param + "}", their_id)
            nobody_path = base + template.replace("{" + param + "}", missing)
            await _same_refusal(
                app, client, method, theirs_path, nobody_path, (their_id, missing), headers, body
            )
    # Nothing of theirs changed.
    still = (await client.get(f"/admin/v1/orgs/{theirs['id']}/connections", headers=OPERATOR)).json()
    assert {c["profile_id"]: c["status"] for c in still}[theirs["ref"]] == "active"


async def test_v1_refs_to_another_orgs_connections_and_agents_answer_like_missing_ones(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    mine, theirs = await _org(client, "alpha"), await _org(client, "beta")
    services: Services = app.state.services
    assert services.gateway is not None
    key = {"authorization": f"Bearer {mine['key']}"}
    # Warm the key and routing caches, so both sides of each pair start alike.
    assert (
        await client.post(
            "/v1/chat/completions",
            json={"model": "nosuch/m", "messages": [{"role": "user", "content": "hi"}]},
            headers=key,
        )
    ).status_code == 404
    pairs = [
        (f"{theirs['lab']}/m1", f"{'nosuch'}-lab/m1", theirs["lab"], "nosuch-lab"),
        (f"agent:{theirs['agent']}", "agent:nosuch-bot", theirs["agent"], "nosuch-bot"),
        (
            f"openai:{theirs['ref'].split(':', 1)[1]}/gpt-4o-mini",
            "openai:nosuch-conn/gpt-4o-mini",
            theirs["ref"].split(":", 1)[1],
            "nosuch-conn",
        ),
    ]
    for their_model, missing_model, their_name, missing_name in pairs:
        body = {"messages": [{"role": "user", "content": "hi"}]}
        with statements(app) as theirs_sql:
            a = await client.post("/v1/chat/completions", json={**body, "model": their_model}, headers=key)
        with statements(app) as nobody_sql:
            b = await client.post("/v1/chat/completions", json={**body, "model": missing_model}, headers=key)
        assert a.status_code == b.status_code and 400 <= a.status_code < 500, (their_model, a.text)
        assert a.json()["error"]["type"] == b.json()["error"]["type"]
        assert a.json()["error"]["message"].replace(their_name, "<x>") == b.json()["error"][
            "message"
        ].replace(missing_name, "<x>")
        assert len(theirs_sql) == len(nobody_sql)
    # Their key is theirs: with it, my org's names are the missing ones.
    theirs_key = {"authorization": f"Bearer {theirs['key']}"}
    a = await client.post(
        "/v1/chat/completions",
        json={"model": f"agent:{mine['agent']}", "messages": [{"role": "user", "content": "hi"}]},
        headers=theirs_key,
    )
    assert a.status_code == 404
