"""Error statuses and bodies of /v1, and canary keys that must never come back out."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from billing.preflight import Hold, InsufficientCreditsError, PreflightRequest
from server.v1.ratelimit import InProcessRateLimiter, RateLimit
from tests.emulators.openai import Scenario
from tests.emulators.openai_errors import ERRORS, rate_limited
from tests.server.v1.conftest import CANARIES, Patchbay, Upstreams

CHAT = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}
ERROR_FIELDS = {"message", "type", "param", "code"}


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_FIELDS
    error: dict[str, Any] = body["error"]
    return error


async def test_missing_and_bad_keys_are_401(patchbay: Patchbay) -> None:
    async with httpx.AsyncClient(base_url=patchbay.url) as c:
        missing = await c.post("/v1/chat/completions", json=CHAT)
        bad = await c.post("/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer pb-wrong"})
    assert missing.status_code == bad.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert _error(missing)["code"] == "missing_api_key"
    assert _error(bad)["code"] == "invalid_api_key"


async def test_invalid_requests_are_400_with_param(patchbay: Patchbay) -> None:
    async with patchbay.client() as c:
        no_messages = await c.post("/v1/chat/completions", json={"model": "default"})
        not_json = await c.post(
            "/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"}
        )
        two_choices = await c.post("/v1/chat/completions", json={**CHAT, "n": 2})
        bad_choice = await c.post(
            "/v1/chat/completions",
            json={**CHAT, "tool_choice": {"type": "function", "function": {"name": "x"}}},
        )
    assert [r.status_code for r in (no_messages, not_json, two_choices, bad_choice)] == [400, 400, 400, 400]
    assert _error(no_messages)["param"] == "messages"
    assert _error(two_choices)["param"] == "n"
    assert _error(bad_choice)["param"] == "tool_choice"
    assert _error(not_json)["type"] == "invalid_request_error"


async def test_unknown_model_is_404_and_disallowed_model_is_403(patchbay: Patchbay) -> None:
    svc = patchbay.services
    async with patchbay.client() as c:
        unknown = await c.post("/v1/chat/completions", json={**CHAT, "model": "acme/unknown"})
        assert unknown.status_code == 404 and _error(unknown)["code"] == "model_not_found"
        async with svc.db.session() as s:
            await svc.agents().set_org_routing(
                s, patchbay.org_id, allowed_models=["mistral/mistral-small-latest"]
            )
        svc.config_changed(patchbay.org_id)
        denied = await c.post("/v1/chat/completions", json={**CHAT, "model": "openai/gpt-4o-mini"})
    assert denied.status_code == 403 and _error(denied)["code"] == "model_not_allowed"


async def test_per_key_rate_limit_is_429_with_retry_after(patchbay: Patchbay) -> None:
    gateway = patchbay.services.gateway
    assert gateway is not None
    # A clock that stands still: the bucket refills at 1 per 30 s, so the wait is exactly 30
    # however long the requests themselves take.
    gateway.rate_limiter = InProcessRateLimiter(RateLimit(requests=2, per_seconds=60), clock=lambda: 1_000.0)
    async with patchbay.client() as c:
        statuses = [(await c.post("/v1/chat/completions", json=CHAT)).status_code for _ in range(2)]
        limited = await c.post("/v1/chat/completions", json=CHAT)
        other_key = await c.post(
            "/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {patchbay.agent_key}"}
        )
    assert statuses == [200, 200]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) == 30
    assert _error(limited)["code"] == "rate_limit_exceeded"
    assert other_key.status_code == 200  # buckets are per key


@pytest.mark.parametrize("use_redis", [True])
@pytest.mark.parametrize("rate_limit", [RateLimit(requests=1, per_seconds=60)])
async def test_rate_limit_in_redis_is_shared_by_the_gateway(patchbay: Patchbay) -> None:
    from server.v1.ratelimit import RedisRateLimiter

    gateway = patchbay.services.gateway
    assert gateway is not None and isinstance(gateway.rate_limiter, RedisRateLimiter)
    async with patchbay.client() as c:
        first = await c.post("/v1/chat/completions", json=CHAT)
        second = await c.post("/v1/chat/completions", json=CHAT)
    assert first.status_code == 200
    # Redis keeps the time here, which moves while the requests run: the wait is the window
    # less whatever already passed, never more than the window and never nothing.
    assert second.status_code == 429 and 0 < int(second.headers["retry-after"]) <= 60


async def test_every_candidate_rate_limited_upstream_is_429(patchbay: Patchbay, upstreams: Upstreams) -> None:
    upstreams.openai.always(rate_limited(7))
    upstreams.mistral.always(rate_limited(7, flavor="mistral"))
    async with patchbay.client() as c:
        response = await c.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert _error(response)["code"] == "upstream_rate_limited"
    assert "failed:rate_limit" in response.headers["x-patchbay-route"]


async def test_every_candidate_failing_is_502_and_never_echoes_the_upstream_key(
    patchbay: Patchbay, upstreams: Upstreams, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # Both upstreams answer 401 with a body that quotes the key we sent them.
    upstreams.openai.always(ERRORS["openai"]["auth"])
    upstreams.mistral.always(ERRORS["mistral"]["auth"])
    seen: list[str] = []
    async with patchbay.client() as c:
        failed = await c.post("/v1/chat/completions", json={**CHAT, "stream": True})
        # Auth failures take both profiles out of rotation: the next request has nothing to try.
        skipped = await c.post("/v1/chat/completions", json=CHAT)
    assert failed.status_code == 502 and _error(failed)["code"] == "upstream_auth"
    assert skipped.status_code == 503 and "skipped:" in skipped.headers["x-patchbay-route"]
    seen += [failed.text, str(failed.headers), skipped.text, str(skipped.headers)]
    async with patchbay.client() as c:
        models = await c.get("/v1/models")
        seen += [models.text, str(models.headers)]
    assert upstreams.openai.chat_requests, "the upstream was called"
    assert any(OPENAI_KEY_FRAGMENT in str(r.headers) for r in upstreams.openai.chat_requests)
    seen += [r.getMessage() + " " + str(getattr(r, "fields", "")) for r in caplog.records]
    for text in seen:
        for canary in CANARIES:
            assert canary not in text


OPENAI_KEY_FRAGMENT = CANARIES[0][-12:]


async def test_no_available_candidate_is_503(patchbay: Patchbay) -> None:
    svc = patchbay.services
    async with svc.db.session() as s:
        conns = svc.connections()
        await conns.update(s, patchbay.org_id, "openai:main", enabled=False)
        await conns.update(s, patchbay.org_id, "mistral:default", enabled=False)
    svc.config_changed(patchbay.org_id)
    async with patchbay.client() as c:
        response = await c.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 503
    assert _error(response)["code"] == "no_available_model"
    assert response.headers["x-patchbay-route"] == (
        "openai:main/gpt-4o-mini=skipped:status:disabled;mistral:default/mistral-small-latest=skipped:status:disabled"
    )


class _Broke:
    def __init__(self) -> None:
        self.requests: list[PreflightRequest] = []

    async def hold(self, request: PreflightRequest) -> Hold:
        self.requests.append(request)
        raise InsufficientCreditsError("the organisation is out of credits")


async def test_out_of_credits_is_402(patchbay: Patchbay, upstreams: Upstreams) -> None:
    gateway = patchbay.services.gateway
    assert gateway is not None
    broke = _Broke()
    gateway.router.preflight = broke
    async with patchbay.client() as c:
        response = await c.post("/v1/chat/completions", json=CHAT)
        messages = await c.post(
            "/v1/messages",
            json={"model": "default", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        )
    assert response.status_code == 402
    assert _error(response)["code"] == "insufficient_credits"
    assert messages.status_code == 402 and messages.json()["error"]["type"] == "billing_error"
    assert broke.requests[0].org_id == patchbay.org_id and broke.requests[0].segment == "llm"
    assert upstreams.openai.chat_requests == []


async def test_anthropic_surface_errors_use_anthropic_shape(patchbay: Patchbay) -> None:
    async with httpx.AsyncClient(base_url=patchbay.url) as c:
        bad = await c.post("/v1/messages", json={}, headers={"x-api-key": "pb-wrong"})
    assert bad.status_code == 401
    assert bad.json() == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid or revoked API key"},
    }
    async with patchbay.client() as c:
        invalid = await c.post("/v1/messages", json={"model": "default", "messages": []})
    assert invalid.status_code == 400 and invalid.json()["error"]["type"] == "invalid_request_error"


async def test_healthy_request_after_errors_is_unaffected(patchbay: Patchbay, upstreams: Upstreams) -> None:
    upstreams.openai.enqueue(Scenario(text="fine"))
    async with patchbay.client() as c:
        response = await c.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "fine"
