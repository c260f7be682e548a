"""Platform connections on /v1, end to end through the emulator, on both databases: a request
served by the operator's connection is charged (x-patchbay-cost equals the ledger's settle) for
an org with credits and refused with 402 before any provider call for one without; the tier table
skips what the org's tier does not allow (`skipped:tier:byok`), and the BYOK override keeps BYOK.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import update

from billing.ledger_query import list_entries
from billing.money import parse_usd
from billing.prices import Price
from foundation.tiers import Tier
from providers.vault.secret import Secret
from routing.flag_store import set_percent
from routing.platform import PLATFORM_SCOPE
from routing.tables import OrgAISettings
from server import accounts
from tests.server.v1.conftest import OPENAI_KEY, Patchbay, Upstreams

CHAT = {"model": "default", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
PRICE = Price.from_usd({"input": Decimal("0.15"), "output": Decimal("0.60")})


async def _platform_and_org(patchbay: Patchbay, up: Upstreams, *, tier: str, own_openai: bool = False) -> str:
    """A platform `openai:platform` to the emulator (priced), and an org on `tier` whose chat
    chain is `openai/gpt-4o-mini`; returns an API key of that org."""
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
        org = await accounts.create_org(s, "Beta", Tier(tier))
        if own_openai:
            await conns.create(s, org.id, provider="openai", base_url=up.openai_url, key=Secret(OPENAI_KEY))
        await svc.agents().set_org_routing(s, org.id, chains={"chat": ["openai/gpt-4o-mini"]})
        key = await accounts.create_api_key(s, org.id, name="beta")
    svc.config_changed(PLATFORM_SCOPE)
    return key.key


async def _org_of(patchbay: Patchbay, key: str) -> str:
    """The id of the org `_platform_and_org` made."""
    async with patchbay.services.db.session() as s:
        return (await accounts.get_org(s, "Beta")).id


async def test_a_platform_served_request_is_charged_for_an_org_with_credits(
    patchbay: Patchbay, upstreams: Upstreams
) -> None:
    key = await _platform_and_org(patchbay, upstreams, tier="free")
    org_id = await _org_of(patchbay, key)
    ledger = patchbay.services.ledger
    await ledger.grant(org_id, 1_000_000, "test-grant")
    async with patchbay.client(key) as c:
        chat = await c.post("/v1/chat/completions", json=CHAT)
    assert chat.status_code == 200, chat.text
    assert chat.headers["x-patchbay-route"] == "openai:platform/gpt-4o-mini=served"
    cost = parse_usd(chat.headers["x-patchbay-cost"])
    assert cost > 0
    await patchbay.services.leases.flush()  # settles are written behind (billing/lease.py)
    balance = await ledger.balance(org_id)
    assert balance.held == 0 and balance.balance == 1_000_000 - cost
    assert len(upstreams.openai.chat_requests) == 1


async def test_a_platform_request_without_credits_is_402_before_any_provider_call(
    patchbay: Patchbay, upstreams: Upstreams
) -> None:
    key = await _platform_and_org(patchbay, upstreams, tier="free")
    async with patchbay.client(key) as c:
        chat = await c.post("/v1/chat/completions", json=CHAT)
    assert chat.status_code == 402, chat.text
    assert chat.json()["error"]["code"] == "insufficient_credits"
    assert upstreams.openai.chat_requests == []


async def test_the_tier_skips_byok_and_the_platform_connection_serves(
    patchbay: Patchbay, upstreams: Upstreams
) -> None:
    # Free: platform only. The org's own openai key is skipped; with no allowed own connection,
    # the platform's openai connection serves `openai/gpt-4o-mini`.
    key = await _platform_and_org(patchbay, upstreams, tier="free", own_openai=True)
    org_id = await _org_of(patchbay, key)
    await patchbay.services.ledger.grant(org_id, 1_000_000, "test-grant")
    async with patchbay.client(key) as c:
        chat = await c.post("/v1/chat/completions", json=CHAT)
    assert chat.status_code == 200, chat.text
    assert chat.headers["x-patchbay-route"] == (
        "openai:default/gpt-4o-mini=skipped:tier:byok;openai:platform/gpt-4o-mini=served"
    )
    assert parse_usd(chat.headers["x-patchbay-cost"]) > 0

    # The migrated BYOK override: the org's own key wins again, and costs nothing.
    async with patchbay.services.db.session() as s:
        await s.execute(update(OrgAISettings).where(OrgAISettings.org_id == org_id).values(byok_enabled=True))
    patchbay.services.config_changed(org_id)
    async with patchbay.client(key) as c:
        chat = await c.post("/v1/chat/completions", json=CHAT)
    assert chat.headers["x-patchbay-route"] == "openai:default/gpt-4o-mini=served"
    assert chat.headers["x-patchbay-cost"] == "0.00"


async def test_the_orgs_own_connection_wins_unless_routing_names_the_platforms(
    patchbay: Patchbay, upstreams: Upstreams
) -> None:
    await _platform_and_org(patchbay, upstreams, tier="free")
    await patchbay.services.ledger.grant(patchbay.org_id, 1_000_000, "test-grant")  # Acme: enterprise
    async with patchbay.client() as c:
        own = await c.post("/v1/chat/completions", json={**CHAT, "model": "openai/gpt-4o-mini"})
        named = await c.post("/v1/chat/completions", json={**CHAT, "model": "openai:platform/gpt-4o-mini"})
    assert own.headers["x-patchbay-route"] == "openai:main/gpt-4o-mini=served"
    assert named.headers["x-patchbay-route"] == "openai:platform/gpt-4o-mini=served"
    assert parse_usd(named.headers["x-patchbay-cost"]) > 0  # enterprise: bundled, at list price


async def test_billing_enforcement_off_serves_without_credits_and_still_meters(
    patchbay: Patchbay, upstreams: Upstreams
) -> None:
    """The `billing_enforcement` flag off for the org (rolled out to 0%): the request that was a
    402 above is served by the platform connection, and its cost is still settled on the ledger
    (charged as far as the balance goes, here nothing, the rest recorded as the shortfall)."""
    key = await _platform_and_org(patchbay, upstreams, tier="free")
    org_id = await _org_of(patchbay, key)
    async with patchbay.services.db.session() as s:
        await set_percent(s, "billing_enforcement", 0, actor="test")
    patchbay.services.config_changed(PLATFORM_SCOPE)
    async with patchbay.client(key) as c:
        chat = await c.post("/v1/chat/completions", json=CHAT)
    assert chat.status_code == 200, chat.text
    assert chat.headers["x-patchbay-route"] == "openai:platform/gpt-4o-mini=served"
    assert parse_usd(chat.headers["x-patchbay-cost"]) == 0  # what was charged: the balance was 0
    await patchbay.services.leases.flush()
    async with patchbay.services.db.session() as s:
        entries = await list_entries(s, org_id)
    metered = [e for e in entries if e.shortfall]
    assert len(metered) == 1 and metered[0].amount == 0 and metered[0].shortfall > 0
    assert (await patchbay.services.ledger.balance(org_id)).held == 0
