"""Monthly budgets and per-key spend limits on /v1, end to end on both databases: a request
under the cap is served and counted, one past it is a 402 (`budget_exceeded`,
`spend_limit_exceeded`; Anthropic's format on /v1/messages) before any provider call, and a
request that cannot be charged is never refused by a cap.

The charged case is the `starter` tier's per-request BYOK surcharge (as in test_billing.py).
The ledger and the caps run on a fixed clock, so no test depends on today's month.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import update

import billing.spend_caps
from billing.money import format_usd, parse_usd
from foundation.orgs import Org
from server import accounts
from server.services import Overrides
from tests.server.v1.conftest import Patchbay, Upstreams

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
ADMIN = {"authorization": "Bearer admin-test-token-0123456789abcdefghij"}
CHAT = {"model": "default", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def overrides() -> Overrides:
    return Overrides(billing_clock=lambda: NOW)


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The orgs whose caps were read from the database (on a first request, or after a change)."""
    seen: list[str] = []
    real = billing.spend_caps.load

    async def counted(session: Any, org_ids: Any, month: str) -> Any:
        seen.extend(org_ids)
        return await real(session, org_ids, month)

    monkeypatch.setattr(billing.spend_caps, "load", counted)
    return seen


async def _starter_with_credits(patchbay: Patchbay) -> None:
    async with patchbay.services.db.session() as s:
        await s.execute(update(Org).where(Org.id == patchbay.org_id).values(tier="starter"))
    patchbay.services.config_changed(patchbay.org_id)
    await patchbay.services.ledger.grant(patchbay.org_id, 1_000_000, "test-grant")


async def _key_id(patchbay: Patchbay, key: str) -> str:
    async with patchbay.services.db.session() as s:
        principal = await accounts.authenticate_api_key(s, key)
    assert principal is not None
    return principal.key_id


async def _refused_everywhere(c: httpx.AsyncClient, code: str) -> None:
    chat = await c.post("/v1/chat/completions", json=CHAT)
    stream = await c.post("/v1/chat/completions", json={**CHAT, "stream": True})
    messages = await c.post("/v1/messages", json=CHAT)
    for response in (chat, stream):
        assert response.status_code == 402, response.text
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("insufficient_quota", code)
    assert messages.status_code == 402
    body = messages.json()
    assert body["type"] == "error" and body["error"]["type"] == "billing_error"
    assert "--monthly-budget" in body["error"]["message"] or "--spend-limit" in body["error"]["message"]


async def test_under_the_budget_is_served_and_once_it_is_reached_every_surface_is_402(
    patchbay: Patchbay, upstreams: Upstreams, loads: list[str]
) -> None:
    await _starter_with_credits(patchbay)
    org = patchbay.org_id
    async with httpx.AsyncClient(base_url=patchbay.url, headers=ADMIN) as admin:
        set_budget = await admin.patch(f"/admin/v1/orgs/{org}", json={"monthly_budget": "1"})
        assert set_budget.status_code == 200, set_budget.text
        async with patchbay.client() as c:
            served = await c.post("/v1/chat/completions", json=CHAT)
            again = await c.post("/v1/chat/completions", json=CHAT)
        assert served.status_code == again.status_code == 200
        spent = parse_usd(served.headers["x-patchbay-cost"]) + parse_usd(again.headers["x-patchbay-cost"])
        assert spent > 0
        assert loads == [org]  # the caps were read once, not per request
        budget = (await admin.get(f"/admin/v1/orgs/{org}/budget")).json()
        assert budget["spent_this_month_micro_usd"] == spent and budget["month"] == "2026-06"

        # Lower the budget to exactly what was spent: reached.
        lowered = await admin.patch(f"/admin/v1/orgs/{org}", json={"monthly_budget": format_usd(spent)})
        assert lowered.json()["monthly_budget_micro_usd"] == spent
        calls = len(upstreams.openai.chat_requests)
        balance = await patchbay.services.ledger.balance(org)
        async with patchbay.client() as c:
            await _refused_everywhere(c, "budget_exceeded")
            refused = await c.post("/v1/chat/completions", json=CHAT)
        message = refused.json()["error"]["message"]
        assert f"patchbay org update {org} --monthly-budget USD" in message
        assert len(upstreams.openai.chat_requests) == calls  # no provider was called
        assert await patchbay.services.ledger.balance(org) == balance  # nothing held, nothing charged

        # Removing it lets requests through again.
        await admin.patch(f"/admin/v1/orgs/{org}", json={"monthly_budget": None})
        async with patchbay.client() as c:
            assert (await c.post("/v1/chat/completions", json=CHAT)).status_code == 200


async def test_a_key_spend_limit_refuses_that_key_only(patchbay: Patchbay, upstreams: Upstreams) -> None:
    await _starter_with_credits(patchbay)
    org, key_id = patchbay.org_id, await _key_id(patchbay, patchbay.key)
    async with httpx.AsyncClient(base_url=patchbay.url, headers=ADMIN) as admin:
        limited = await admin.patch(f"/admin/v1/orgs/{org}/api-keys/{key_id}", json={"spend_limit": "0.50"})
        assert limited.status_code == 200, limited.text
        async with patchbay.client() as c:
            served = await c.post("/v1/chat/completions", json=CHAT)
        assert served.status_code == 200
        spent = parse_usd(served.headers["x-patchbay-cost"])
        shown = (await admin.get(f"/admin/v1/orgs/{org}/api-keys/{key_id}")).json()
        assert (shown["spend_limit"], shown["spent_this_month_micro_usd"]) == ("0.50", spent)

        await admin.patch(f"/admin/v1/orgs/{org}/api-keys/{key_id}", json={"spend_limit": format_usd(spent)})
        async with patchbay.client() as c:
            await _refused_everywhere(c, "spend_limit_exceeded")
        async with patchbay.client(patchbay.agent_key) as c:  # another key of the same org
            assert (await c.post("/v1/chat/completions", json=CHAT)).status_code == 200


async def test_a_budget_of_zero_never_blocks_a_request_that_is_not_charged(
    patchbay: Patchbay, upstreams: Upstreams
) -> None:
    # The rig's org is `enterprise`: BYOK without a per-request charge; its balance is zero too.
    org, key_id = patchbay.org_id, await _key_id(patchbay, patchbay.key)
    async with httpx.AsyncClient(base_url=patchbay.url, headers=ADMIN) as admin:
        assert (await admin.patch(f"/admin/v1/orgs/{org}", json={"monthly_budget": 0})).status_code == 200
        assert (
            await admin.patch(f"/admin/v1/orgs/{org}/api-keys/{key_id}", json={"spend_limit": "0"})
        ).status_code == 200
    async with patchbay.client() as c:
        chat = await c.post("/v1/chat/completions", json=CHAT)
        stream = await c.post("/v1/chat/completions", json={**CHAT, "stream": True})
        messages = await c.post("/v1/messages", json=CHAT)
    assert (chat.status_code, stream.status_code, messages.status_code) == (200, 200, 200)
    # The same budget refuses the same request once it is charged (starter's surcharge).
    await _starter_with_credits(patchbay)
    async with patchbay.client() as c:
        await _refused_everywhere(c, "budget_exceeded")
