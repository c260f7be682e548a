"""The `voice` feature flag on realtime: off for the org (rolled out to 0%, or killed), a session
is refused with one `error` event (`feature_disabled`) and a 1008 close, and no browser token
is minted for it (403); a canary org, or the
flag at its default, opens sessions as before."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import websockets

from routing.flag_store import set_canary, set_killed, set_percent
from routing.platform import PLATFORM_SCOPE
from tests.server.realtime.conftest import Client, Patchbay
from tests.server.realtime.sdk import validated


async def _refusal(client: Client) -> dict[str, Any]:
    event = await client.recv()
    assert event["type"] == "error"
    validated(event)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await client.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    error: dict[str, Any] = event["error"]
    return error


async def test_voice_off_refuses_the_session_and_a_canary_org_still_opens_one(
    connect: Any, patchbay: Patchbay
) -> None:
    assert (await (await connect()).until("session.created"))[-1]["type"] == "session.created"

    async with patchbay.services.db.session() as s:
        await set_percent(s, "voice", 0, actor="test")
    patchbay.services.config_changed(PLATFORM_SCOPE)
    refused = await _refusal(await connect())
    assert refused["code"] == "feature_disabled" and "`voice` feature flag" in refused["message"]
    async with httpx.AsyncClient(
        base_url=patchbay.url, headers={"authorization": f"Bearer {patchbay.key}"}
    ) as http:
        minted = await http.post("/v1/realtime/client_secrets", json={})
    assert minted.status_code == 403 and minted.json()["error"]["code"] == "feature_disabled"

    async with patchbay.services.db.session() as s:
        await set_canary(s, "voice", add=[patchbay.org_id], remove=[], actor="test")
    patchbay.services.config_changed(PLATFORM_SCOPE)
    assert (await (await connect()).until("session.created"))[-1]["type"] == "session.created"

    async with patchbay.services.db.session() as s:
        await set_killed(s, "voice", True, actor="test")
    patchbay.services.config_changed(PLATFORM_SCOPE)
    assert (await _refusal(await connect()))["code"] == "feature_disabled"
