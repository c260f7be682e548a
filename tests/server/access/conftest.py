"""Two orgs, each with a connection and an agent, and helpers to mint credentials for them."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from tests.server.conftest import ADMIN_TOKEN

OPERATOR = {"authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class Orgs:
    a: dict[str, str]
    b: dict[str, str]


async def mint_token(client: httpx.AsyncClient, org: str, role: str, **extra: str) -> dict[str, str]:
    r = await client.post(
        f"/admin/v1/orgs/{org}/admin-tokens", json={"role": role, **extra}, headers=OPERATOR
    )
    assert r.status_code == 201, r.text
    return {"authorization": f"Bearer {r.json()['token']}", "id": r.json()["id"]}


def bearer(headers: dict[str, str]) -> dict[str, str]:
    return {"authorization": headers["authorization"]}


@pytest.fixture
async def orgs(client: httpx.AsyncClient) -> Orgs:
    made = {}
    for name in ("alpha", "beta"):
        r = await client.post("/admin/v1/orgs", json={"name": name}, headers=OPERATOR)
        assert r.status_code == 201, r.text
        org = r.json()
        conn = await client.post(
            f"/admin/v1/orgs/{org['id']}/connections",
            json={"provider": "openai", "name": "main", "key": f"sk-{name}-0123456789abcdef"},
            headers=OPERATOR,
        )
        assert conn.status_code == 201, conn.text
        agent = await client.post(
            f"/admin/v1/orgs/{org['id']}/agents",
            json={"name": "bot", "chains": {"chat": ["openai/gpt-4o-mini"]}},
            headers=OPERATOR,
        )
        assert agent.status_code == 201, agent.text
        made[name] = {"id": org["id"], "name": name, "connection": conn.json()["profile_id"]}
    return Orgs(a=made["alpha"], b=made["beta"])
