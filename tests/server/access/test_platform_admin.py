"""Platform connections through the admin API: the operator manages them; an org's members
(any role) read what the platform offers their org, without keys, URLs or fingerprints, and
cannot touch the operator's routes."""

from __future__ import annotations

import httpx
import pytest

from tests.server.access.conftest import OPERATOR, Orgs, bearer, mint_token

KEY = "sk-platform-CANARY-0123456789abcdef"
P = "/admin/v1/platform/connections"


async def _add(client: httpx.AsyncClient, **body: object) -> httpx.Response:
    return await client.post(P, json={"provider": "openai", "key": KEY, **body}, headers=OPERATOR)


async def test_the_operator_manages_platform_connections(client: httpx.AsyncClient, orgs: Orgs) -> None:
    created = await _add(client, models=[{"id": "gpt-4o-mini", "price": {"input": "0.15", "output": "0.60"}}])
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["profile_id"], body["billing_source"], body["credential_source"]) == (
        "openai:platform",
        "platform",
        "platform_key",
    )
    assert KEY not in created.text and body["key"]["fingerprint"].endswith(KEY[-4:])
    assert (await _add(client)).status_code == 409  # platform profile ids are unique too

    listed = await client.get(P, headers=OPERATOR)
    assert [c["profile_id"] for c in listed.json()] == ["openai:platform"]
    # Not an org's: the org's own list does not show it.
    own = await client.get(f"/admin/v1/orgs/{orgs.a['id']}/connections", headers=OPERATOR)
    assert [c["profile_id"] for c in own.json()] == [orgs.a["connection"]]

    patched = await client.patch(f"{P}/openai:platform", json={"enabled": False}, headers=OPERATOR)
    assert patched.json()["status"] == "disabled"
    rekeyed = await client.put(f"{P}/openai:platform/key", json={"key": KEY + "x"}, headers=OPERATOR)
    assert rekeyed.json()["id"] == body["id"]
    revoked = await client.post(f"{P}/openai:platform/revoke", headers=OPERATOR)
    assert revoked.json()["status"] == "revoked" and revoked.json()["key"] is None
    deleted = await client.delete(f"{P}/openai:platform", headers=OPERATOR)
    assert deleted.status_code == 200
    assert (await client.get(f"{P}/openai:platform", headers=OPERATOR)).status_code == 404


@pytest.mark.parametrize("role", ["owner", "admin", "billing", "viewer"])
async def test_org_members_read_the_offer_and_cannot_manage(
    client: httpx.AsyncClient, orgs: Orgs, role: str
) -> None:
    await _add(client, name="plat", models=["gpt-4o-mini"])
    await _add(client, provider="anthropic", name="platform")
    member = bearer(await mint_token(client, orgs.a["id"], role))
    for method, path in [
        ("GET", P),
        ("POST", P),
        ("GET", f"{P}/openai:plat"),
        ("PATCH", f"{P}/openai:plat"),
        ("PUT", f"{P}/openai:plat/key"),
        ("POST", f"{P}/openai:plat/revoke"),
        ("DELETE", f"{P}/openai:plat"),
    ]:
        refused = await client.request(method, path, json={}, headers=member)
        assert refused.status_code == 403, (method, path, refused.text)
        assert "operator" in refused.json()["error"]["message"]

    offer = await client.get(f"/admin/v1/orgs/{orgs.a['id']}/platform-connections", headers=member)
    assert offer.status_code == 200, offer.text
    body = offer.json()
    assert KEY[-4:] not in offer.text and "fingerprint" not in offer.text and "base_url" not in offer.text
    assert (body["tier"], body["byok_override"], body["platform_allowed"]) == ("enterprise", False, True)
    assert body["billing_sources"] == ["byok", "platform", "private"]
    by_profile = {c["profile_id"]: c for c in body["connections"]}
    # The org has its own openai connection: it wins over the platform's for `openai/...`.
    assert by_profile["openai:plat"]["in_use"] is False
    assert by_profile["openai:plat"]["models"] == [{"id": "gpt-4o-mini", "capabilities": ["text"]}]
    assert by_profile["anthropic:platform"]["in_use"] is True

    other = await client.get(f"/admin/v1/orgs/{orgs.b['id']}/platform-connections", headers=member)
    assert other.status_code == 404  # another org is answered as one that does not exist
