"""Keys read from the server's environment are the operator's to hand out: no org credential may
create such a connection, or move one to another base URL."""

from __future__ import annotations

import httpx
import pytest

from server.settings import Settings
from tests.server.access.conftest import OPERATOR, Orgs, bearer, mint_token


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"env_reference_allow": "OPENAI_API_KEY"})


async def test_only_the_operator_creates_or_moves_env_referenced_connections(
    client: httpx.AsyncClient, orgs: Orgs
) -> None:
    base = f"/admin/v1/orgs/{orgs.a['id']}/connections"
    body = {
        "provider": "openai_compatible",
        "name": "shared",
        "base_url": "https://llm.example.com/v1",
        "env_reference": "OPENAI_API_KEY",
    }
    owner = bearer(await mint_token(client, orgs.a["id"], "owner"))
    refused = await client.post(base, json=body, headers=owner)
    assert refused.status_code == 403 and refused.json()["error"]["param"] == "env_reference"
    master = await client.post(base, json={**body, "env_reference": "PATCHBAY_MASTER_KEY"}, headers=OPERATOR)
    assert master.status_code == 400
    made = await client.post(base, json=body, headers=OPERATOR)
    assert made.status_code == 201, made.text
    ref = f"{base}/{made.json()['profile_id']}"
    moved = await client.patch(ref, json={"base_url": "https://attacker.example/v1"}, headers=owner)
    assert moved.status_code == 403 and moved.json()["error"]["param"] == "base_url"
    assert (await client.get(ref, headers=owner)).json()["base_url"] == "https://llm.example.com/v1"
    # What the org may still do with it: turn it off and on.
    assert (await client.patch(ref, json={"enabled": False}, headers=owner)).status_code == 200
    assert (
        await client.patch(ref, json={"base_url": "https://llm2.example.com/v1"}, headers=OPERATOR)
    ).status_code == 200
