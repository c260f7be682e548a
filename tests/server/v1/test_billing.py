"""Billing on /v1, end to end through the emulators, on both databases: the 402 before any
provider is called, the charge after, and no ledger at all where nothing can be charged.

Platform connections (billing source `platform`) do not exist yet (issue 14, item 1), so the
charged case is the `starter` tier's per-request BYOK surcharge; the platform cases are unit
tests of `billing.credits_preflight` with the prices the router passes.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import select, update

from billing.money import parse_usd
from billing.tables import UsageRecord
from foundation.orgs import Org
from tests.server.v1.conftest import Patchbay, Upstreams

CHAT = {"model": "default", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": "default", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}


async def _set_tier(patchbay: Patchbay, tier: str) -> None:
    async with patchbay.services.db.session() as s:
        await s.execute(update(Org).where(Org.id == patchbay.org_id).values(tier=tier))
    patchbay.services.config_changed(patchbay.org_id)


@pytest.fixture
def ledger_writes(patchbay: Patchbay, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The org ids of every ledger transaction (hold, settle, charge, release: `Ledger._write`)."""
    ledger = patchbay.services.ledger
    seen: list[str] = []
    write = ledger._write

    async def counted(org_id: str, fn: Any, **options: Any) -> Any:
        seen.append(org_id)
        return await write(org_id, fn, **options)

    monkeypatch.setattr(ledger, "_write", counted)
    return seen


async def test_a_request_the_balance_cannot_cover_is_402_before_any_provider_call(
    patchbay: Patchbay, upstreams: Upstreams
) -> None:
    await _set_tier(patchbay, "starter")  # BYOK with a per-request surcharge, and no credits
    async with patchbay.client() as c:
        chat = await c.post("/v1/chat/completions", json=CHAT)
        stream = await c.post("/v1/chat/completions", json={**CHAT, "stream": True})
        messages = await c.post("/v1/messages", json=MESSAGES)
    for response in (chat, stream):
        assert response.status_code == 402, response.text
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_credits")
        assert "credits" in error["message"]
    assert messages.status_code == 402
    assert messages.json()["type"] == "error" and messages.json()["error"]["type"] == "billing_error"
    assert upstreams.openai.chat_requests == []
    balance = await patchbay.services.ledger.balance(patchbay.org_id)
    assert (balance.balance, balance.held) == (0, 0)


async def test_a_covered_surcharged_request_is_served_and_charged_once(
    patchbay: Patchbay, upstreams: Upstreams, ledger_writes: list[str]
) -> None:
    await _set_tier(patchbay, "starter")
    ledger = patchbay.services.ledger
    await ledger.grant(patchbay.org_id, 1_000_000, "test-grant")
    del ledger_writes[:]
    async with patchbay.client() as c:
        chat = await c.post("/v1/chat/completions", json=CHAT)
        async with c.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as stream:
            lines = [line async for line in stream.aiter_lines()]
    assert chat.status_code == 200 and stream.status_code == 200
    assert "data: [DONE]" in lines
    assert len(upstreams.openai.chat_requests) == 2
    # Both settled before their responses completed: no hold left, a charge for each.
    balance = await ledger.balance(patchbay.org_id)
    assert balance.held == 0 and 0 < balance.balance < 1_000_000
    assert ledger_writes == [patchbay.org_id] * 4  # a hold and a settle each, nothing more
    assert json.loads(chat.text)["usage"]["prompt_tokens"] > 0
    # What each response said it cost is exactly what the ledger charged.
    [trailer] = [line for line in lines if line.startswith(": x-patchbay-cost ")]
    assert lines.index(trailer) < lines.index("data: [DONE]")
    charged = parse_usd(chat.headers["x-patchbay-cost"]) + parse_usd(trailer.split()[-1])
    assert charged == 1_000_000 - balance.balance
    # ... and what each usage record carries.
    await patchbay.services.usage.flush()
    async with patchbay.services.db.session() as s:
        recorded = (await s.scalars(select(UsageRecord.cost_micro_usd))).all()
    assert len(recorded) == 2 and sum(recorded) == charged and min(recorded) > 0


async def test_a_byok_request_without_a_per_request_charge_never_touches_the_ledger(
    patchbay: Patchbay, upstreams: Upstreams, ledger_writes: list[str]
) -> None:
    # The rig's org is `enterprise` (the default tier): BYOK is included. Its balance is zero.
    async with patchbay.client() as c:
        chat = await c.post("/v1/chat/completions", json=CHAT)
        stream = await c.post("/v1/chat/completions", json={**CHAT, "stream": True})
        messages = await c.post("/v1/messages", json=MESSAGES)
    assert (chat.status_code, stream.status_code, messages.status_code) == (200, 200, 200)
    assert ledger_writes == []
    assert chat.headers["x-patchbay-cost"] == messages.headers["x-patchbay-cost"] == "0.00"
    assert ": x-patchbay-cost 0.00" in stream.text.splitlines()


async def test_a_client_that_leaves_while_its_stream_settles_is_still_charged(
    patchbay: Patchbay, upstreams: Upstreams, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client goes away after the last content chunk, while the settle waits for the ledger
    (a slow write, here held by the test). The segment was served: the settle must finish, not
    be cancelled with the response and leave the hold to expire unpaid."""
    await _set_tier(patchbay, "starter")
    ledger = patchbay.services.ledger
    await ledger.grant(patchbay.org_id, 1_000_000, "test-grant")
    write = ledger._write
    settling, proceed, settled = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def slow_settle(org_id: str, fn: Any, **options: Any) -> Any:
        if "settle" not in fn.__qualname__:
            return await write(org_id, fn, **options)
        settling.set()
        try:
            await proceed.wait()
            return await write(org_id, fn, **options)
        finally:
            settled.set()

    monkeypatch.setattr(ledger, "_write", slow_settle)
    async with patchbay.client() as c:
        async with c.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as stream:
            assert stream.status_code == 200
            await asyncio.wait_for(settling.wait(), 10)
        # The client hung up mid-settle; the server cancels the response's task when it notices.
        for _ in range(1000):
            if any(task.cancelling() for task in asyncio.all_tasks()):
                break
            await asyncio.sleep(0.01)  # polling for the server to notice, bounded (10 s)
        else:
            raise AssertionError("the server never noticed the client leave")
        proceed.set()
        await asyncio.wait_for(settled.wait(), 10)
    balance = await ledger.balance(patchbay.org_id)
    assert (balance.held, balance.open_holds) == (0, 0) and balance.balance < 1_000_000
    await patchbay.services.usage.flush()  # the usage record carries the same charge
    async with patchbay.services.db.session() as s:
        recorded = (await s.scalars(select(UsageRecord.cost_micro_usd))).all()
    assert recorded == [1_000_000 - balance.balance]
