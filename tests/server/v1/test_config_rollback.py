"""Configuration history and rollback through the HTTP API, on both database backends.

A routing change through the admin API is a version; a rollback to the version before it puts
the previous chain back and the very next `/v1/chat/completions` follows it (the emulators say
which upstream served). A rollback never brings back a revoked connection, and no version ever
holds a key.
"""

from __future__ import annotations

import json

import httpx

from tests.server.conftest import ADMIN_TOKEN
from tests.server.v1.conftest import CANARIES, Patchbay, Upstreams

OPERATOR = {"authorization": f"Bearer {ADMIN_TOKEN}"}
BODY = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}


async def _chat(patchbay: Patchbay) -> None:
    async with patchbay.client() as client:
        resp = await client.post("/v1/chat/completions", json=BODY)
    assert resp.status_code == 200, resp.text


async def test_a_routing_rollback_restores_the_chain_the_next_request_follows(
    patchbay: Patchbay, upstreams: Upstreams
) -> None:
    base = f"/admin/v1/orgs/{patchbay.org_id}"
    async with httpx.AsyncClient(base_url=patchbay.url, headers=OPERATOR, timeout=10) as admin:
        before = (await admin.get(f"{base}/config/history")).json()
        original = before[0]["version"]

        resp = await admin.put(f"{base}/routing", json={"chains": {"chat": ["mistral/mistral-small-latest"]}})
        assert resp.status_code == 200, resp.text
        await _chat(patchbay)
        assert (len(upstreams.openai.chat_requests), len(upstreams.mistral.chat_requests)) == (0, 1)

        history = (await admin.get(f"{base}/config/history")).json()
        assert history[0]["version"] > original
        assert history[0]["kind"] == "routing"
        assert history[0]["actor"] == "operator"
        assert any("routing.chains" in line and "mistral" in line for line in history[0]["changes"])

        resp = await admin.post(f"{base}/config/rollback", json={"to_version": original})
        assert resp.status_code == 200, resp.text
        result = resp.json()
        assert result["to_version"] == original and result["not_restored"] == []
        assert (await admin.get(f"{base}/routing")).json()["chains"]["chat"] == [
            "openai/gpt-4o-mini",
            "mistral/mistral-small-latest",
        ]

        await _chat(patchbay)
        assert (len(upstreams.openai.chat_requests), len(upstreams.mistral.chat_requests)) == (1, 1)

        latest = (await admin.get(f"{base}/config/history")).json()[0]
        assert (latest["version"], latest["kind"]) == (result["new_version"], "rollback")


async def test_a_rollback_never_restores_a_revoked_connection_and_versions_hold_no_key(
    patchbay: Patchbay,
) -> None:
    base = f"/admin/v1/orgs/{patchbay.org_id}"
    async with httpx.AsyncClient(base_url=patchbay.url, headers=OPERATOR, timeout=10) as admin:
        original = (await admin.get(f"{base}/config/history")).json()[0]["version"]
        assert (await admin.post(f"{base}/connections/openai:main/revoke")).status_code == 200

        resp = await admin.post(f"{base}/config/rollback", json={"to_version": original})
        assert resp.status_code == 200, resp.text
        not_restored = resp.json()["not_restored"]
        assert len(not_restored) == 1 and "openai:main" in not_restored[0] and "revoked" in not_restored[0]
        assert (await admin.get(f"{base}/connections/openai:main")).json()["status"] == "revoked"

        versions = (await admin.get(f"{base}/config/history", params={"snapshots": "true"})).json()
        text = json.dumps(versions)
        assert all(canary not in text for canary in CANARIES)
        for version in versions:
            for conn in version["snapshot"]["connections"]:
                assert set(conn) == {"id", "profile", "status", "position"}

        missing = await admin.post(f"{base}/config/rollback", json={"to_version": 10_000})
        assert missing.status_code == 404
        # Beyond the column's range: a 400 naming the field, not the driver's overflow (a 500).
        huge = await admin.post(f"{base}/config/rollback", json={"to_version": 2**63})
        assert huge.status_code == 400 and "to_version" in huge.text
