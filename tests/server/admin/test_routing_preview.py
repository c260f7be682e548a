"""`GET /admin/v1/orgs/{org}/routing/preview` on both backends: the saved chain or an edited one,
each model usable or with the resolver's reason in plain words; a viewer may read it."""

from __future__ import annotations

from datetime import datetime

import httpx
from fastapi import FastAPI

from providers.contract import ErrorClass
from routing.cooldown import Failure
from server.services import Services
from tests.server.access.conftest import OPERATOR, bearer, mint_token
from tests.server.admin.test_billing import make_org


async def setup_org(client: httpx.AsyncClient) -> str:
    org = await make_org(client, "acme")
    base = f"/admin/v1/orgs/{org}"
    assert (await client.patch(base, json={"tier": "pro"}, headers=OPERATOR)).status_code == 200
    models = [{"id": "plain", "capabilities": ["text"]}, {"id": "seer", "capabilities": ["text", "vision"]}]
    made = await client.post(
        f"{base}/connections",
        json={"provider": "openai", "name": "main", "key": "sk-test-0000", "models": models},
        headers=OPERATOR,
    )
    assert made.status_code == 201, made.text
    lab = {
        "provider": "openai_compatible",
        "name": "mylab",
        "base_url": "https://lab.example/v1",
        "models": ["plain"],
    }
    assert (await client.post(f"{base}/connections", json=lab, headers=OPERATOR)).status_code == 201
    saved = await client.put(
        f"{base}/routing", json={"chains": {"chat": ["mylab/plain", "openai/plain"]}}, headers=OPERATOR
    )
    assert saved.status_code == 200, saved.text
    return org


async def test_the_saved_chain_after_a_downgrade_and_during_a_cooldown(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    org = await setup_org(client)
    base = f"/admin/v1/orgs/{org}"
    assert (await client.patch(base, json={"tier": "starter"}, headers=OPERATOR)).status_code == 200
    services: Services = app.state.services
    now = services.gateway.router.executor.runner.clock.time()
    await services.gateway.cooldowns.record_failure(
        org, "openai:main", Failure(ErrorClass.RATE_LIMIT, "plain", 3600), now
    )
    [state] = (await services.gateway.cooldowns.get_many(org, ["openai:main"])).values()

    r = await client.get(f"{base}/routing/preview", params={"intent": "chat"}, headers=OPERATOR)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["tier"], body["source"], body["first"], body["needs"]) == (
        "starter",
        "org:chat",
        None,
        ["text"],
    )
    lab, own = body["chain"]
    assert (lab["ref"], lab["state"], lab["usable"]) == ("mylab/plain", "unusable", False)
    [tier] = lab["reasons"]
    assert (tier["code"], tier["allowed_on_tier"], tier["profile"]) == (
        "skipped:tier:private",
        "pro",
        "openai_compatible:mylab",
    )
    assert "not allowed on the starter tier" in tier["text"] and "pro tier" in tier["text"]
    assert (own["ref"], own["state"]) == ("openai/plain", "waiting")
    [cool] = own["reasons"]
    assert cool["code"] == "skipped:cooldown:rate_limit"
    assert state.cooldown_until is not None
    assert (
        abs(datetime.fromisoformat(cool["until"]).timestamp() - state.cooldown_until) < 1e-3
    )  # microseconds on the wire
    assert (
        cool["text"].startswith("cooling down until ") and "after a rate limit on openai:main" in cool["text"]
    )
    by_ref = {m["ref"]: m["state"] for m in body["reachable"]}
    assert by_ref == {"mylab/plain": "unusable", "openai/plain": "waiting", "openai/seer": "usable"}


async def test_an_edited_chain_and_a_viewer(client: httpx.AsyncClient) -> None:
    org = await setup_org(client)
    viewer = bearer(await mint_token(client, org, "viewer"))
    url = f"/admin/v1/orgs/{org}/routing/preview"
    r = await client.get(
        url, params={"intent": "vision", "chain": "openai/plain,openai/seer,xai/grok-4"}, headers=viewer
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["source"], body["first"]) == ("edited", "openai/seer")
    assert [(m["ref"], m["state"], [x["code"] for x in m["reasons"]]) for m in body["chain"]] == [
        ("openai/plain", "unusable", ["skipped:capability:vision"]),
        ("openai/seer", "usable", []),
        ("xai/grok-4", "unusable", ["skipped:no_connection"]),
    ]
    assert (
        body["chain"][0]["text"]
        == "missing capability: plain cannot read images (vision), which vision needs"
    )
    assert body["chain"][1]["profiles"] == ["openai:main"]

    assert (await client.get(url, params={"intent": "nope"}, headers=viewer)).status_code == 400
    missing = await client.get(url, params={"agent": "ghost"}, headers=viewer)
    assert missing.status_code == 404 and "ghost" in missing.text
    assert (await client.get(url)).status_code == 401


async def test_an_agent_without_chains_follows_the_org_and_an_empty_matrix_says_so(
    client: httpx.AsyncClient,
) -> None:
    org = await setup_org(client)
    base = f"/admin/v1/orgs/{org}"
    made = await client.post(
        f"{base}/agents", json={"name": "support", "chains": {"chat": ["openai/seer"]}}, headers=OPERATOR
    )
    assert made.status_code == 201, made.text
    agent = (
        await client.get(f"{base}/routing/preview", params={"agent": "support"}, headers=OPERATOR)
    ).json()
    assert (agent["agent"], agent["source"], agent["first"]) == ("support", "agent:support", "openai/seer")
    empty = (await client.get(f"{base}/routing/preview", params={"intent": "tts"}, headers=OPERATOR)).json()
    assert (empty["source"], empty["chain"], empty["first"]) == (None, [], None)
    assert "tts" in empty["error"]
