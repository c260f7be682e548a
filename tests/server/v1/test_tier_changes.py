"""A tier change on /v1, end to end on both databases: a downgrade pro -> free deletes nothing
but skips the org's BYOK and private connections with their reasons (the platform connection
serves), and an upgrade brings them back; a second registry on the same database sees the
change by its config poll alone."""

from __future__ import annotations

from decimal import Decimal

import httpx
from sqlalchemy import select

from billing.policy import billing_policy
from billing.prices import Price
from foundation.tiers import Tier
from providers.contract import BillingSource
from providers.vault.secret import Secret
from routing.platform import PLATFORM_SCOPE
from routing.registry import Registry
from routing.tables import Connection
from server import accounts, org_plan
from tests.server.conftest import ADMIN_TOKEN
from tests.server.v1.conftest import OPENAI_KEY, Patchbay, Upstreams

CHAT = {"model": "default", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
PRICE = Price.from_usd({"input": Decimal("0.15"), "output": Decimal("0.60")})
OPERATOR = {"authorization": f"Bearer {ADMIN_TOKEN}"}


async def _pro_org(patchbay: Patchbay, up: Upstreams) -> tuple[str, str]:
    """An org on `pro` with a private endpoint `mylab` and its own openai key, a platform openai
    connection, credits; its chat chain is `mylab/gpt-4o-mini`, then `openai/gpt-4o-mini`."""
    svc = patchbay.services
    async with svc.db.session() as s:
        conns = svc.connections()
        await conns.create(
            s,
            None,
            provider="openai",
            base_url=up.openai_url,
            key=Secret(OPENAI_KEY),
            models=["gpt-4o-mini"],
            prices={"gpt-4o-mini": PRICE},
        )
        org = await accounts.create_org(s, "Beta", Tier.PRO)
        await conns.create(s, org.id, provider="openai", base_url=up.openai_url, key=Secret(OPENAI_KEY))
        await conns.create(
            s,
            org.id,
            provider="openai_compatible",
            name="mylab",
            base_url=up.openai_url,
            key=Secret(OPENAI_KEY),
            models=["gpt-4o-mini"],
        )
        await svc.agents().set_org_routing(
            s, org.id, chains={"chat": ["mylab/gpt-4o-mini", "openai/gpt-4o-mini"]}
        )
        key = await accounts.create_api_key(s, org.id, name="beta")
    svc.config_changed(PLATFORM_SCOPE)
    await svc.ledger.grant(org.id, 1_000_000, "test-grant")
    return org.id, key.key


async def _route(patchbay: Patchbay, key: str) -> str:
    async with patchbay.client(key) as c:
        chat = await c.post("/v1/chat/completions", json=CHAT)
    assert chat.status_code == 200, chat.text
    return chat.headers["x-patchbay-route"]


async def _set_tier(patchbay: Patchbay, org_id: str, tier: str) -> None:
    async with httpx.AsyncClient(base_url=patchbay.url, headers=OPERATOR, timeout=10) as admin:
        r = await admin.patch(f"/admin/v1/orgs/{org_id}", json={"tier": tier})
    assert r.status_code == 200, r.text


async def _own_connections(patchbay: Patchbay, org_id: str) -> list[tuple[str, str, str, str]]:
    """The org's connection rows as stored: id, provider, name, status."""
    async with patchbay.services.db.session() as s:
        rows = (await s.scalars(select(Connection).where(Connection.org_id == org_id))).all()
    return sorted((c.id, c.provider, c.name, c.status) for c in rows)


async def test_a_downgrade_skips_byok_and_private_without_deleting_and_an_upgrade_restores(
    patchbay: Patchbay, upstreams: Upstreams
) -> None:
    org_id, key = await _pro_org(patchbay, upstreams)
    before = await _own_connections(patchbay, org_id)
    assert sorted((p, n, st) for _, p, n, st in before) == [
        ("openai", "default", "active"),
        ("openai_compatible", "mylab", "active"),
    ]
    assert await _route(patchbay, key) == "openai_compatible:mylab/gpt-4o-mini=served"

    await _set_tier(patchbay, org_id, "free")
    assert await _route(patchbay, key) == (
        "openai_compatible:mylab/gpt-4o-mini=skipped:tier:private;"
        "openai:default/gpt-4o-mini=skipped:tier:byok;"
        "openai:platform/gpt-4o-mini=served"
    )
    assert await _own_connections(patchbay, org_id) == before  # kept, unchanged

    await _set_tier(patchbay, org_id, "pro")
    assert await _route(patchbay, key) == "openai_compatible:mylab/gpt-4o-mini=served"
    assert await _own_connections(patchbay, org_id) == before


async def test_a_second_registry_sees_a_tier_change_by_its_config_poll(
    patchbay: Patchbay, upstreams: Upstreams
) -> None:
    org_id, _ = await _pro_org(patchbay, upstreams)
    svc = patchbay.services
    other = Registry(svc.db.sessions, svc.vault, billing_policy=billing_policy, poll_interval=3600)
    try:
        assert (await other.get(org_id)).routing.allowed_billing >= {
            BillingSource.BYOK,
            BillingSource.PRIVATE,
        }
        await _set_tier(patchbay, org_id, "free")  # the other replica gets no notice, only the counter
        assert (
            BillingSource.PRIVATE in (await other.get(org_id)).routing.allowed_billing
        )  # still its old copy
        await other.poll_once()
        entry = await other.get(org_id)
        assert entry.routing.tier == "free"
        assert entry.routing.allowed_billing == frozenset({BillingSource.PLATFORM})
        async with svc.db.session() as s:  # the override, set the way the CLI does (no notice at all)
            await org_plan.set_plan(s, org_id, byok_override=True, actor="cli")
        await other.poll_once()
        assert (await other.get(org_id)).routing.allowed_billing == frozenset(
            {BillingSource.PLATFORM, BillingSource.BYOK}
        )
    finally:
        await other.aclose()
