"""/v1 never charges a request id the predecessor charged (imported by `patchbay migrate
legacy-billing`), and the import skips one /v1 charged: end to end, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update

from billing.ledger_history import Status
from billing.legacy_billing import LegacyRow
from foundation.orgs import Org
from tests.server.v1.conftest import Patchbay, Upstreams

CHAT = {"model": "default", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}


def legacy_row(org_id: str, request_id: str, cost: int) -> LegacyRow:
    return LegacyRow(
        1, org_id, request_id, "openai/gpt-4o-mini", 10, 5, cost, datetime(2025, 12, 1, tzinfo=UTC)
    )


async def test_an_imported_request_id_is_refused_with_409_before_any_provider_call(
    patchbay: Patchbay, upstreams: Upstreams
) -> None:
    async with patchbay.services.db.session() as s:  # starter: BYOK with a per-request surcharge
        await s.execute(update(Org).where(Org.id == patchbay.org_id).values(tier="starter"))
    patchbay.services.config_changed(patchbay.org_id)
    ledger = patchbay.services.ledger
    await ledger.grant(patchbay.org_id, 1_000_000, "credits")
    [done] = await ledger.import_history(
        patchbay.org_id, [legacy_row(patchbay.org_id, "legacy-req-1", 2_500)]
    )
    assert done.status is Status.IMPORTED
    after_import = await ledger.balance(patchbay.org_id)

    async with patchbay.client() as c:
        chat = await c.post("/v1/chat/completions", json=CHAT, headers={"x-request-id": "legacy-req-1"})
        stream = await c.post(
            "/v1/chat/completions", json={**CHAT, "stream": True}, headers={"x-request-id": "legacy-req-1"}
        )
        messages = await c.post("/v1/messages", json=CHAT, headers={"x-request-id": "legacy-req-1"})
    for response in (chat, stream):
        assert response.status_code == 409, response.text
        error = response.json()["error"]
        assert (error["code"], error["param"]) == ("request_already_charged", "x-request-id")
        assert "new x-request-id" in error["message"]
    assert messages.status_code == 409
    assert messages.json()["error"]["type"] == "invalid_request_error"
    assert upstreams.openai.chat_requests == []
    assert await ledger.balance(patchbay.org_id) == after_import

    async with patchbay.client() as c:
        fresh = await c.post("/v1/chat/completions", json=CHAT, headers={"x-request-id": "patchbay-req-2"})
    assert fresh.status_code == 200, fresh.text
    charged = after_import.balance - (await ledger.balance(patchbay.org_id)).balance
    assert charged > 0
    # The predecessor's export also holds the id /v1 just charged: the import skips it.
    [skipped] = await ledger.import_history(
        patchbay.org_id, [legacy_row(patchbay.org_id, "patchbay-req-2", 999)]
    )
    assert skipped.status is Status.SKIPPED_CHARGED
    assert after_import.balance - (await ledger.balance(patchbay.org_id)).balance == charged
