"""AI Connections through the admin API: write-only keys, stable ids, order, guard, agents."""

from __future__ import annotations

import secrets

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from foundation.audit import AuditEvent
from foundation.orgs import Org
from providers.contract import ProviderId
from routing.snapshot import build_org_routing
from routing.tables import Connection, OrgAISettings
from server.services import Services
from server.settings import Settings


def canary() -> str:
    return "sk-test-CANARY-" + secrets.token_hex(12)


@pytest.fixture
async def org(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> str:
    r = await client.post("/admin/v1/orgs", json={"name": "acme"}, headers=admin_headers)
    return str(r.json()["id"])


async def test_keys_are_write_only_and_replacement_keeps_identity(
    client: httpx.AsyncClient, admin_headers: dict[str, str], org: str, app: FastAPI
) -> None:
    first, second = canary(), canary()
    base = f"/admin/v1/orgs/{org}/connections"
    created = await client.post(base, json={"provider": "openai", "key": first}, headers=admin_headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["profile_id"] == "openai:default"
    assert body["billing_source"] == "byok"
    assert body["key"]["fingerprint"].endswith(first[-4:])
    assert first not in created.text

    backup = await client.post(
        base, json={"provider": "openai", "name": "backup", "key": second}, headers=admin_headers
    )
    assert backup.json()["position"] == 1

    replaced = await client.put(f"{base}/openai:default/key", json={"key": second}, headers=admin_headers)
    assert replaced.status_code == 200
    assert replaced.json()["id"] == body["id"] and replaced.json()["position"] == 0
    assert replaced.json()["key"]["fingerprint"].endswith(second[-4:])

    listing = await client.get(base, headers=admin_headers)
    assert first not in listing.text and second not in listing.text
    assert [c["profile_id"] for c in listing.json()] == ["openai:default", "openai:backup"]

    reordered = await client.put(
        f"/admin/v1/orgs/{org}/connections-order",
        json={"provider": "openai", "profiles": ["backup", "default"]},
        headers=admin_headers,
    )
    assert [c["profile_id"] for c in reordered.json()] == ["openai:backup", "openai:default"]
    services_: Services = app.state.services
    async with services_.db.session() as s:
        org_row = await s.get(Org, org)
        settings_row = await s.get(OrgAISettings, org)
        conns = (await s.scalars(select(Connection).where(Connection.org_id == org))).all()
        assert org_row is not None and settings_row is not None
        snapshot = build_org_routing(org_row, settings_row, conns, [])
    assert snapshot.explicit_order == frozenset({ProviderId.OPENAI})
    assert [c.profile_id for c in snapshot.profiles[ProviderId.OPENAI]] == ["openai:backup", "openai:default"]

    revoked = await client.post(f"{base}/openai:backup/revoke", json={}, headers=admin_headers)
    assert revoked.json()["status"] == "revoked"
    assert revoked.json()["key"] is None, "a revoked connection has no key left to describe"
    deleted = await client.delete(f"{base}/openai:default", headers=admin_headers)
    assert deleted.status_code == 200
    assert (await client.get(f"{base}/openai:default", headers=admin_headers)).status_code == 404

    services: Services = app.state.services
    async with services.db.session() as s:
        actions = (await s.scalars(select(AuditEvent.action).where(AuditEvent.org_id == org))).all()
        details = (await s.scalars(select(AuditEvent.details))).all()
    assert {"connection.create", "connection.key_replaced", "connection.revoke", "connection.delete"} <= set(
        actions
    )
    assert not any(first in str(d) or second in str(d) for d in details)
    async with services.db.session() as s:
        revoke_details = (
            await s.scalars(select(AuditEvent.details).where(AuditEvent.action == "connection.revoke"))
        ).all()
    assert [d["fingerprint"][-4:] for d in revoke_details] == [second[-4:]], (
        "the revoked key's fingerprint stays in the audit trail"
    )


async def test_custom_endpoint_rules_and_guard(
    client: httpx.AsyncClient, admin_headers: dict[str, str], org: str
) -> None:
    base = f"/admin/v1/orgs/{org}/connections"
    no_name = await client.post(
        base,
        json={"provider": "openai_compatible", "base_url": "https://llm.example.com/v1"},
        headers=admin_headers,
    )
    assert no_name.status_code == 400 and "name" in no_name.json()["error"]["message"]

    for url in ("http://169.254.169.254/latest", "http://127.0.0.1:8000/v1", "http://10.0.0.1/v1"):
        refused = await client.post(
            base,
            json={"provider": "openai_compatible", "name": "lab", "base_url": url},
            headers=admin_headers,
        )
        assert refused.status_code == 400
        assert refused.json()["error"]["type"] == "base_url_refused"

    ok = await client.post(
        base,
        json={
            "provider": "openai_compatible",
            "name": "mylab",
            "base_url": "https://llm.example.com/v1",
            "models": ["llama-3-70b", {"id": "llava", "capabilities": ["text", "vision"]}],
        },
        headers=admin_headers,
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["billing_source"] == "private"
    assert ok.json()["key"] is None
    assert ok.json()["models"][1] == {"id": "llava", "capabilities": ["text", "vision"]}

    missing_key = await client.post(base, json={"provider": "anthropic"}, headers=admin_headers)
    assert missing_key.status_code == 400
    unknown = await client.post(base, json={"provider": "bedrock", "key": "x"}, headers=admin_headers)
    assert unknown.status_code == 400


async def test_agents_and_org_routing(
    client: httpx.AsyncClient, admin_headers: dict[str, str], org: str
) -> None:
    base = f"/admin/v1/orgs/{org}"
    for provider in ("openai", "anthropic"):
        made = await client.post(
            f"{base}/connections", json={"provider": provider, "key": canary()}, headers=admin_headers
        )
        assert made.status_code == 201, made.text
    unserved = await client.post(
        f"{base}/agents",
        json={"name": "support", "chains": {"chat": ["openai/gpt-4o", "mylab/llama-3-70b"]}},
        headers=admin_headers,
    )
    assert unserved.status_code == 400
    assert unserved.json()["error"]["param"] == "chains.chat"
    assert (
        "no connection serves mylab/llama-3-70b; add one for 'mylab'" in unserved.json()["error"]["message"]
    )
    r = await client.post(
        f"{base}/agents",
        json={"name": "support", "chains": {"chat": ["openai/gpt-4o"]}},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    assert r.json()["chains"] == {"chat": ["openai/gpt-4o"]}
    bad = await client.post(
        f"{base}/agents", json={"name": "x", "chains": {"dance": ["openai/gpt-4o"]}}, headers=admin_headers
    )
    assert bad.status_code == 400 and "unknown intent" in bad.json()["error"]["message"]
    bad_ref = await client.post(
        f"{base}/agents", json={"name": "y", "chains": {"chat": ["gpt-4o"]}}, headers=admin_headers
    )
    assert bad_ref.status_code == 400

    upd = await client.patch(
        f"{base}/agents/support",
        json={"chains": {"voice_turn": ["anthropic/claude-haiku"]}},
        headers=admin_headers,
    )
    assert upd.json()["chains"] == {"chat": ["openai/gpt-4o"], "voice_turn": ["anthropic/claude-haiku"]}
    no_text = await client.patch(
        f"{base}/agents/support", json={"chains": {"tools": ["openai/tts-1"]}}, headers=admin_headers
    )
    assert no_text.status_code == 400 and no_text.json()["error"]["param"] == "chains.tools"
    assert (
        "openai/tts-1 lacks the `text` capability the tools intent needs"
        in no_text.json()["error"]["message"]
    )
    for body, param in (
        ({"default_model": "gemini/gemini-2.5-flash"}, "default_model"),
        ({"allowed_models": ["openai/gpt-4o", "xai/grok-4"]}, "allowed_models"),
    ):
        refused = await client.put(f"{base}/routing", json=body, headers=admin_headers)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == param, refused.text
        assert "no connection serves" in refused.json()["error"]["message"]

    routing = await client.put(
        f"{base}/routing",
        json={
            "default_model": "openai/gpt-4o",
            "chains": {"chat": ["openai/gpt-4o"]},
            "allowed_models": ["openai/gpt-4o"],
        },
        headers=admin_headers,
    )
    assert routing.json() == {
        "default_model": "openai/gpt-4o",
        "chains": {"chat": ["openai/gpt-4o"]},
        "allowed_models": ["openai/gpt-4o"],
    }


async def test_agent_voice_settings(
    client: httpx.AsyncClient, admin_headers: dict[str, str], org: str
) -> None:
    base = f"/admin/v1/orgs/{org}/agents"
    made = await client.post(
        f"/admin/v1/orgs/{org}/connections",
        json={"provider": "openai", "key": canary()},
        headers=admin_headers,
    )
    assert made.status_code == 201, made.text
    ada = {"voice": "nova", "instructions": "You are Ada.", "language": "en-us", "output_format": "g711_ulaw"}
    created = await client.post(base, json={"name": "ada", "voice_settings": ada}, headers=admin_headers)
    assert created.status_code == 201, created.text
    assert created.json()["voice_settings"] == {**ada, "language": "en-US"}
    plain = await client.post(base, json={"name": "plain"}, headers=admin_headers)
    assert plain.json()["voice_settings"] == dict.fromkeys(ada)

    # Left out: unchanged; an empty string: cleared.
    updated = await client.patch(
        f"{base}/ada", json={"voice_settings": {"voice": "", "language": "fr"}}, headers=admin_headers
    )
    assert updated.json()["voice_settings"] == {
        "voice": None,
        "instructions": "You are Ada.",
        "language": "fr",
        "output_format": "g711_ulaw",
    }
    untouched = await client.patch(
        f"{base}/ada", json={"default_model": "openai/gpt-4o"}, headers=admin_headers
    )
    assert untouched.json()["voice_settings"] == updated.json()["voice_settings"]

    for body, param in [
        ({"language": "French"}, "voice_settings.language"),
        ({"output_format": "mp3"}, "voice_settings.output_format"),
        ({"voice": "v" * 129}, "voice_settings.voice"),
        ({"instructions": "x" * (32 * 1024 + 1)}, "voice_settings.instructions"),
        ({"speed": 2}, "voice_settings.speed"),
    ]:
        refused = await client.patch(f"{base}/ada", json={"voice_settings": body}, headers=admin_headers)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == param, refused.text
    listed = (await client.get(base, headers=admin_headers)).json()
    assert [a["voice_settings"]["language"] for a in listed] == ["fr", None]


async def test_an_empty_key_is_a_400_naming_the_field(
    client: httpx.AsyncClient, admin_headers: dict[str, str], org: str
) -> None:
    base = f"/admin/v1/orgs/{org}/connections"
    for empty in ("", "   "):
        created = await client.post(base, json={"provider": "openai", "key": empty}, headers=admin_headers)
        assert created.status_code == 400 and created.json()["error"]["param"] == "key", created.text
    assert (
        await client.post(base, json={"provider": "openai", "key": canary()}, headers=admin_headers)
    ).status_code == 201
    replaced = await client.put(f"{base}/openai:default/key", json={"key": ""}, headers=admin_headers)
    assert replaced.status_code == 400 and replaced.json()["error"]["param"] == "key"


@pytest.mark.parametrize("name", ["ag/4", "../../x", "Ada", "-x", "a b", "a.b", "", "x" * 65])
async def test_agent_names_that_break_paths_or_lookups_are_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], org: str, name: str
) -> None:
    r = await client.post(f"/admin/v1/orgs/{org}/agents", json={"name": name}, headers=admin_headers)
    assert r.status_code == 400 and r.json()["error"]["param"] == "name", r.text
    assert (await client.get(f"/admin/v1/orgs/{org}/agents", headers=admin_headers)).json() == []


async def test_oversized_connection_fields_are_refused_naming_the_field(
    client: httpx.AsyncClient, admin_headers: dict[str, str], org: str
) -> None:
    base = f"/admin/v1/orgs/{org}/connections"
    custom = {"provider": "openai_compatible", "name": "mylab", "base_url": "https://llm.example.com/v1"}
    cases = [
        ({"provider": "openai", "key": "k" * 4097}, "key"),
        ({**custom, "models": ["m" * 256]}, "models"),
        ({**custom, "models": [{"id": "m" * 256}]}, "models"),
        ({**custom, "models": [f"m{i}" for i in range(501)]}, "models"),
        ({**custom, "base_url": "https://llm.example.com/" + "p" * 2048}, "base_url"),
    ]
    for body, field in cases:
        r = await client.post(base, json=body, headers=admin_headers)
        assert r.status_code == 400 and r.json()["error"]["param"] == field, (field, r.text)
    ok = await client.post(
        base, json={**custom, "models": ["m" * 255] + [f"m{i}" for i in range(499)]}, headers=admin_headers
    )
    assert ok.status_code == 201, ok.text
    ref = f"{base}/{ok.json()['profile_id']}"
    long_list = await client.patch(ref, json={"models": [f"m{i}" for i in range(501)]}, headers=admin_headers)
    assert long_list.status_code == 400 and long_list.json()["error"]["param"] == "models"
    long_url = await client.patch(
        ref, json={"base_url": "https://x.example/" + "p" * 2048}, headers=admin_headers
    )
    assert long_url.status_code == 400 and long_url.json()["error"]["param"] == "base_url"
    long_key = await client.put(f"{ref}/key", json={"key": "k" * 4097}, headers=admin_headers)
    assert long_key.status_code == 400 and long_key.json()["error"]["param"] == "key"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"env_reference_allow": "OPENAI_API_KEY"})


async def test_env_references_are_limited_to_the_allowlist(
    client: httpx.AsyncClient, admin_headers: dict[str, str], org: str
) -> None:
    base = f"/admin/v1/orgs/{org}/connections"
    own = await client.post(
        base,
        json={
            "provider": "openai_compatible",
            "name": "leak",
            "base_url": "https://llm.example.com/v1",
            "env_reference": "PATCHBAY_MASTER_KEY",
        },
        headers=admin_headers,
    )
    assert own.status_code == 400 and "server's own settings" in own.json()["error"]["message"]
    unlisted = await client.post(
        base, json={"provider": "openai", "env_reference": "AWS_SECRET_ACCESS_KEY"}, headers=admin_headers
    )
    assert unlisted.status_code == 400
    assert "PATCHBAY_ENV_REFERENCE_ALLOW" in unlisted.json()["error"]["message"]
    listed = await client.post(
        base, json={"provider": "openai", "env_reference": "OPENAI_API_KEY"}, headers=admin_headers
    )
    assert listed.status_code == 201, listed.text
    assert listed.json()["env_reference"] == "OPENAI_API_KEY"


async def test_numeric_ipv4_forms_and_embedded_ipv4_are_refused_when_saved(
    client: httpx.AsyncClient, admin_headers: dict[str, str], org: str
) -> None:
    base = f"/admin/v1/orgs/{org}/connections"
    for url in (
        "http://2130706433/v1",
        "http://0177.0.0.1/v1",
        "http://127.1/v1",
        "http://0x7f.1/v1",
        "https://[64:ff9b::a9fe:a9fe]/v1",
    ):
        refused = await client.post(
            base,
            json={"provider": "openai_compatible", "name": "lab", "base_url": url},
            headers=admin_headers,
        )
        assert refused.status_code == 400, url
        assert refused.json()["error"]["type"] == "base_url_refused"
    created = await client.post(
        base,
        json={"provider": "openai_compatible", "name": "lab", "base_url": "https://llm.example.com/v1"},
        headers=admin_headers,
    )
    assert created.status_code == 201
    updated = await client.patch(
        f"{base}/openai_compatible:lab", json={"base_url": "http://127.1/v1"}, headers=admin_headers
    )
    assert updated.status_code == 400 and "numeric IPv4 form" in updated.json()["error"]["message"]
