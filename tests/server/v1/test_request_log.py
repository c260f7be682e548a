"""The request log through a real Patchbay and real emulators: what each /v1 request leaves behind.

Each test swaps in a request log it can follow (tests/server/activity/recorded.py): the entry
of a request is handed over as the request ends, and reaches the database when the test
flushes, so the test reads the row exactly as the admin API would.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import anthropic
import openai
import pytest

from foundation.db import utcnow
from server.activity import query
from server.v1.ratelimit import RateLimit
from tests.emulators.openai import Scenario
from tests.emulators.openai_wire import fail
from tests.server.activity.recorded import RecordedLog, install
from tests.server.v1.conftest import Patchbay, Upstreams

MESSAGES = [{"role": "user", "content": "the secret word is marmalade"}]
ADMIN = {"authorization": "Bearer admin-test-token-0123456789abcdefghij"}


@pytest.fixture
async def log(patchbay: Patchbay) -> RecordedLog:
    return await install(patchbay.services)


@pytest.fixture
async def sdk(patchbay: Patchbay) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=patchbay.url + "/v1", api_key=patchbay.key, max_retries=0) as c:
        yield c


async def logged(patchbay: Patchbay, log: RecordedLog, **filters: str) -> list[query.LoggedRequest]:
    await log.flush()
    now = utcnow()
    async with patchbay.services.db.session() as s:
        return await query.list_requests(
            s, patchbay.org_id, since=now - timedelta(hours=1), until=now + timedelta(minutes=1), **filters
        )


async def set_content_logging(patchbay: Patchbay, enabled: bool) -> None:
    async with patchbay.client() as raw:
        r = await raw.put(
            f"/admin/v1/orgs/{patchbay.org_id}/request-log/settings",
            json={"content_logging": enabled},
            headers=ADMIN,
        )
    assert r.status_code == 200, r.text
    assert r.json()["content_logging"] is enabled


async def test_a_served_chat_request_is_logged_with_its_key_route_and_tokens(
    patchbay: Patchbay, log: RecordedLog, sdk: openai.AsyncOpenAI
) -> None:
    raw = await sdk.chat.completions.with_raw_response.create(model="default", messages=MESSAGES)  # type: ignore[arg-type]
    completion = raw.parse()
    await log.next()
    [row] = await logged(patchbay, log)
    assert row.surface == "chat.completions"
    assert (row.key_name, row.model, row.status, row.outcome) == ("test", "default", 200, "ok")
    assert row.request_id == raw.headers["x-patchbay-request-id"]
    assert row.connection == "openai:main" and row.served_model == "openai/gpt-4o-mini"
    assert row.billing_source == "byok" and row.intent == "chat"
    assert row.route is not None and row.route["served"] == "openai:main/gpt-4o-mini"
    assert [a["result"] for a in row.route["attempts"]] == ["served"]
    assert completion.usage is not None
    assert (row.input_tokens, row.output_tokens) == (
        completion.usage.prompt_tokens,
        completion.usage.completion_tokens,
    )
    assert row.error_type is None and row.latency_ms is not None and row.latency_ms > 0
    assert row.content is None  # content logging is off by default


async def test_a_streamed_request_that_fell_back_is_logged_with_both_attempts(
    patchbay: Patchbay, log: RecordedLog, sdk: openai.AsyncOpenAI, upstreams: Upstreams
) -> None:
    upstreams.openai.always(fail(500, {"error": {"message": "boom", "type": "server_error"}}))
    stream = await sdk.chat.completions.create(model="default", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    async for _ in stream:
        pass
    await log.next()
    [row] = await logged(patchbay, log)
    assert (row.status, row.outcome, row.connection) == (200, "ok", "mistral:default")
    assert row.route is not None
    assert [a["result"] for a in row.route["attempts"]] == ["failed:server_error", "served"]
    assert row.output_tokens is not None and row.output_tokens > 0


async def test_a_request_every_attempt_failed_is_logged_with_its_error_and_trace(
    patchbay: Patchbay, log: RecordedLog, sdk: openai.AsyncOpenAI, upstreams: Upstreams
) -> None:
    broken = fail(500, {"error": {"message": "boom", "type": "server_error"}})
    upstreams.openai.always(broken)
    upstreams.mistral.always(broken)
    with pytest.raises(openai.APIStatusError) as info:
        await sdk.chat.completions.create(model="default", messages=MESSAGES)  # type: ignore[arg-type]
    assert info.value.status_code == 502
    await log.next()
    [row] = await logged(patchbay, log, status="error")
    assert (row.status, row.outcome, row.error_type, row.error_class) == (
        502,
        "error",
        "upstream_server_error",
        "server_error",
    )
    assert row.connection is None and row.key_name == "test"
    assert row.route is not None and row.route["served"] is None
    assert [a["profile"] for a in row.route["attempts"]] == ["openai:main", "mistral:default"]


async def test_a_stream_that_fails_after_its_first_token_is_an_error_with_status_200(
    patchbay: Patchbay, log: RecordedLog, upstreams: Upstreams
) -> None:
    upstreams.openai.enqueue(Scenario(error_after=4))
    async with patchbay.client() as raw:
        r = await raw.post(
            "/v1/chat/completions", json={"model": "default", "messages": MESSAGES, "stream": True}
        )
    assert r.status_code == 200
    await log.next()
    [row] = await logged(patchbay, log, status="error")
    assert (row.status, row.outcome, row.error_type) == (200, "error", "upstream_server_error")
    assert row.error_class == "server_error"


@pytest.mark.parametrize("rate_limit", [RateLimit(requests=1, per_seconds=3600)])
async def test_a_rate_limited_refusal_is_logged_under_its_key(
    patchbay: Patchbay, log: RecordedLog, sdk: openai.AsyncOpenAI
) -> None:
    await sdk.chat.completions.create(model="default", messages=MESSAGES)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError):
        await sdk.chat.completions.create(model="default", messages=MESSAGES)  # type: ignore[arg-type]
    await log.next()
    await log.next()
    [refused] = await logged(patchbay, log, status="429")
    assert (refused.key_name, refused.outcome, refused.error_type) == ("test", "error", "rate_limit_exceeded")
    assert refused.route is None and refused.connection is None
    assert [r.status for r in await logged(patchbay, log)] == [429, 200]  # newest first


async def test_invalid_requests_are_logged_and_unknown_keys_are_not(
    patchbay: Patchbay, log: RecordedLog
) -> None:
    async with patchbay.client() as raw:
        bad = await raw.post("/v1/chat/completions", json={"model": "default", "messages": "nope"})
        unknown = await raw.post(
            "/v1/chat/completions",
            json={"model": "default", "messages": MESSAGES},
            headers={"authorization": "Bearer pb-not-a-key"},
        )
        missing = await raw.post("/v1/chat/models/unknown", json={})
    assert (bad.status_code, unknown.status_code, missing.status_code) == (400, 401, 404)
    entry = await log.next()
    assert entry.status == 400 and log.kept.empty()
    [row] = await logged(patchbay, log)
    assert (row.status, row.error_type, row.key_name) == (400, "invalid_request_error", "test")


async def test_content_is_kept_only_while_the_org_turns_content_logging_on(
    patchbay: Patchbay, log: RecordedLog, sdk: openai.AsyncOpenAI
) -> None:
    await sdk.chat.completions.create(model="default", messages=MESSAGES)  # type: ignore[arg-type]
    await log.next()
    await set_content_logging(patchbay, True)
    await sdk.chat.completions.create(model="default", messages=MESSAGES)  # type: ignore[arg-type]
    stream = await sdk.chat.completions.create(model="default", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    async for _ in stream:
        pass
    await log.next()
    await log.next()
    await set_content_logging(patchbay, False)
    await sdk.chat.completions.create(model="default", messages=MESSAGES)  # type: ignore[arg-type]
    await log.next()
    off_again, streamed, completed, off = await logged(patchbay, log)
    assert off.content is None and off_again.content is None
    for row in (completed, streamed):
        assert row.content is not None
        request = row.content["request"]
        assert request is not None
        assert json.loads(request) == [{"role": "user", "content": "the secret word is marmalade"}]
        assert row.content["response"] == Scenario().text


async def test_the_anthropic_surface_is_logged_too(patchbay: Patchbay, log: RecordedLog) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=patchbay.url, api_key=patchbay.agent_key, max_retries=0
    ) as c:
        await c.messages.create(model="default", max_tokens=50, messages=MESSAGES)  # type: ignore[arg-type]
    await log.next()
    [row] = await logged(patchbay, log, key="agent")
    assert (row.surface, row.status, row.connection, row.agent) == (
        "messages",
        200,
        "mistral:default",
        "support",
    )


async def test_logging_a_request_makes_no_database_round_trip(
    patchbay: Patchbay, log: RecordedLog, sdk: openai.AsyncOpenAI
) -> None:
    await sdk.chat.completions.create(model="default", messages=MESSAGES)  # type: ignore[arg-type]
    await log.next()
    await log.flush()
    lookups, opened, writes = patchbay.services.gateway.api_keys.lookups, log.sessions_opened, log.writes
    for _ in range(3):
        await sdk.chat.completions.create(model="default", messages=MESSAGES)  # type: ignore[arg-type]
        await log.next()
    # Buffered, not written: no session opened for them, no key looked up again.
    assert (log.pending, log.sessions_opened, log.writes) == (3, opened, writes)
    assert patchbay.services.gateway.api_keys.lookups == lookups
    assert await log.flush() == 3 and log.writes == writes + 1
