"""The request log of realtime sessions: one entry per session, one per turn, refusals included."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import websockets

from foundation.db import utcnow
from server.activity import query
from server.v1.ratelimit import InProcessRateLimiter, RateLimit
from tests.emulators.openai import OpenAIEmulator, Scenario
from tests.server.activity.recorded import RecordedLog, install
from tests.server.realtime.conftest import Client, Patchbay

REPLY = "Sure thing. Your table for two is booked at seven."


@pytest.fixture
async def log(patchbay: Patchbay) -> RecordedLog:
    return await install(patchbay.services)


async def logged(patchbay: Patchbay, log: RecordedLog) -> list[query.LoggedRequest]:
    await log.flush()
    now = utcnow()
    async with patchbay.services.db.session() as s:
        return await query.list_requests(
            s, patchbay.org_id, since=now - timedelta(hours=1), until=now + timedelta(minutes=1)
        )


async def text_session(connect: Any) -> Client:
    client: Client = await connect()
    await client.until("session.created")
    await client.send("session.update", session={"type": "realtime", "output_modalities": ["text"]})
    await client.until("session.updated")
    return client


async def test_a_session_and_its_turn_are_logged(
    connect: Any, llm: OpenAIEmulator, patchbay: Patchbay, log: RecordedLog
) -> None:
    llm.enqueue(Scenario(text=REPLY))
    client = await text_session(connect)
    await client.send("response.create")
    done = (await client.until("response.done"))[-1]["response"]
    await log.next()  # the turn's entry is kept when the turn ends
    await client.ws.close()
    await log.next()
    turn, session = await logged(patchbay, log)
    assert (turn.surface, turn.status, turn.outcome, turn.key_name) == ("realtime.turn", 200, "ok", "voice")
    assert turn.connection == "openai:main" and turn.intent == "voice_turn"
    assert turn.route is not None and turn.route["served"] == "openai:main/gpt-4o-mini"
    assert turn.output_tokens == done["usage"]["output_tokens"] and turn.turn_id
    assert turn.content is None
    assert (session.surface, session.status, session.outcome, session.model) == (
        "realtime.session",
        101,
        "ok",
        "default",
    )
    assert (
        session.request_id == turn.request_id
        and session.request_id
        and session.request_id.startswith("sess_")
    )
    assert session.latency_ms is not None and session.latency_ms >= turn.latency_ms  # type: ignore[operator]


async def test_a_refused_turn_and_a_refused_session_are_logged(
    connect: Any, llm: OpenAIEmulator, patchbay: Patchbay, log: RecordedLog
) -> None:
    # The clock stands still: opening the session takes one request, the first turn the second.
    patchbay.services.gateway.rate_limiter = InProcessRateLimiter(RateLimit(2, 60), clock=lambda: 0.0)
    llm.enqueue(Scenario(text=REPLY))
    client = await text_session(connect)
    for _ in range(2):
        await client.send("response.create")
        await client.until("response.done")
        await log.next()
    with pytest.raises(websockets.InvalidStatus):  # closed before accepting: a 403 handshake
        await connect()
    await log.next()
    session_refused, turn_refused, turn_served = await logged(patchbay, log)
    assert (turn_served.status, turn_served.outcome) == (200, "ok")
    assert (turn_refused.surface, turn_refused.status, turn_refused.error_type) == (
        "realtime.turn",
        429,
        "rate_limit_exceeded",
    )
    assert turn_refused.route is None and turn_refused.outcome == "error"
    assert (session_refused.surface, session_refused.status, session_refused.error_type) == (
        "realtime.session",
        429,
        "rate_limit_exceeded",
    )
