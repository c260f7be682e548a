"""Error statuses and bodies of /v1, and canary keys that must never come back out."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import orjson
import pytest

from billing.preflight import Hold, InsufficientCreditsError, PreflightRequest
from foundation.tiers import Tier
from providers.contract import ErrorClass
from providers.errors import ProviderError
from routing.errors import AllAttemptsFailedError
from routing.trace import AttemptTrace, Outcome, TraceEntry
from server.logs import JsonFormatter
from server.org_plan import set_plan
from server.realtime.llm import turn_refusal as realtime_refusal
from server.v1.errors import from_exception
from server.v1.ratelimit import InProcessRateLimiter, RateLimit
from tests.emulators.openai import Scenario
from tests.emulators.openai_errors import ERRORS, rate_limited
from tests.server.v1.conftest import CANARIES, Patchbay, Upstreams

CHAT = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}
ERROR_FIELDS = {"message", "type", "param", "code", "request_id"}


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_FIELDS
    error: dict[str, Any] = body["error"]
    assert error["request_id"] == response.headers["x-request-id"]
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
    # A timed disable passes on its own: 503, and the wait is known.
    assert skipped.status_code == 503 and "skipped:disabled:auth" in skipped.headers["x-patchbay-route"]
    assert _error(skipped)["code"] == "no_available_model" and int(skipped.headers["retry-after"]) >= 1
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


async def test_every_connection_disabled_is_400_naming_the_fix(patchbay: Patchbay) -> None:
    svc = patchbay.services
    async with svc.db.session() as s:
        conns = svc.connections()
        await conns.update(s, patchbay.org_id, "openai:main", enabled=False)
        await conns.update(s, patchbay.org_id, "mistral:default", enabled=False)
    svc.config_changed(patchbay.org_id)
    async with patchbay.client() as c:
        response = await c.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 400 and "retry-after" not in response.headers
    error = _error(response)
    assert error["code"] == "connection_disabled" and error["param"] == "model"
    assert "openai:main/gpt-4o-mini is disabled" in error["message"]
    assert "enable the connection" in error["message"]
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
        "request_id": bad.headers["x-request-id"],
    }
    async with patchbay.client() as c:
        invalid = await c.post("/v1/messages", json={"model": "default", "messages": []})
    assert invalid.status_code == 400 and invalid.json()["error"]["type"] == "invalid_request_error"


async def test_healthy_request_after_errors_is_unaffected(patchbay: Patchbay, upstreams: Upstreams) -> None:
    upstreams.openai.enqueue(Scenario(text="fine"))
    async with patchbay.client() as c:
        response = await c.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "fine"


AUDIO_CHAT = {
    "model": "default",
    "messages": [
        {
            "role": "user",
            "content": [{"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}],
        }
    ],
}


async def test_every_candidate_lacking_a_capability_is_400_on_both_wires(
    patchbay: Patchbay, upstreams: Upstreams
) -> None:
    async with patchbay.client() as c:
        openai = await c.post("/v1/chat/completions", json=AUDIO_CHAT)
    assert openai.status_code == 400, openai.text
    error = _error(openai)
    assert error["code"] == "model_lacks_capability" and error["type"] == "invalid_request_error"
    assert "openai:main/gpt-4o-mini lacks the `audio_in` capability" in error["message"]
    assert "--model ID:text,audio_in" in error["message"]
    assert "skipped:capability:audio_in" in openai.headers["x-patchbay-route"]
    assert upstreams.openai.chat_requests == [] and upstreams.mistral.chat_requests == []


async def test_a_tier_that_allows_no_candidate_is_403(patchbay: Patchbay) -> None:
    svc = patchbay.services
    async with svc.db.session() as s:
        await set_plan(s, patchbay.org_id, tier=Tier.FREE)
    svc.config_changed(patchbay.org_id)
    async with patchbay.client() as c:
        openai = await c.post("/v1/chat/completions", json=CHAT)
        anthropic = await c.post(
            "/v1/messages",
            json={"model": "default", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        )
    assert openai.status_code == 403 and _error(openai)["code"] == "tier_not_allowed"
    assert "does not allow `byok` connections (openai:main/gpt-4o-mini)" in _error(openai)["message"]
    assert anthropic.status_code == 403
    body = anthropic.json()
    assert (
        body["error"]["type"] == "permission_error"
        and body["request_id"] == anthropic.headers["x-request-id"]
    )


class _Lines(logging.Handler):
    """Formats each record as it is emitted, while the request id is still in scope."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(orjson.loads(self.format(record)))


async def test_a_bug_is_a_500_carrying_the_request_id_of_the_log(patchbay: Patchbay) -> None:
    gateway = patchbay.services.gateway
    assert gateway is not None

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug")

    gateway.router.complete = broken  # type: ignore[method-assign]
    handler = _Lines()
    loggers = [logging.getLogger("patchbay.server"), logging.getLogger("patchbay.access")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    try:
        async with patchbay.client() as c:
            response = await c.post("/v1/chat/completions", json=CHAT, headers={"x-request-id": "req-bug-1"})
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "req-bug-1"
    assert response.json()["error"] == {
        "type": "server_error",
        "message": "internal error; see the server log for this request id",
        "request_id": "req-bug-1",
    }
    bug = [line for line in handler.lines if line["msg"] == "unhandled error"]
    access = [line for line in handler.lines if line["msg"] == "request"]
    assert bug and bug[0]["request_id"] == "req-bug-1" and bug[0]["error"] == "RuntimeError: a bug"
    assert access and access[-1]["request_id"] == "req-bug-1" and access[-1]["status"] == 500


@pytest.mark.parametrize(
    ("reason", "status", "code", "anthropic_type"),
    [
        ("capability:tools", 400, "model_lacks_capability", "invalid_request_error"),
        # The conformance gates' skip (issue 16): a failed gate is the admin's to fix, never an outage.
        ("gate:tools", 400, "conformance_gate_failed", "invalid_request_error"),
        ("no_connection", 400, "no_connection", "invalid_request_error"),
        ("status:disabled", 400, "connection_disabled", "invalid_request_error"),
        ("status:revoked", 400, "connection_disabled", "invalid_request_error"),
        ("model_not_offered", 400, "model_not_offered", "invalid_request_error"),
        ("no_adapter:elevenlabs", 400, "no_adapter", "invalid_request_error"),
        ("tier:byok", 403, "tier_not_allowed", "permission_error"),
        ("cooldown:rate_limit", 503, "no_available_model", "overloaded_error"),
        ("disabled:auth", 503, "no_available_model", "overloaded_error"),
    ],
)
def test_every_skip_reason_has_its_status_on_every_wire(
    reason: str, status: int, code: str, anthropic_type: str
) -> None:
    trace = AttemptTrace(intent="tools")
    trace.add(
        TraceEntry(
            ref="mylab/llama-3", profile_id="openai_compatible:mylab", outcome=Outcome.SKIPPED,
            reason=reason, retry_after=7.2 if status == 503 else None,
        )
    )  # fmt: skip
    error = from_exception(AllAttemptsFailedError(trace, None))
    assert error is not None
    assert (error.status, error.code) == (status, code)
    assert error.headers() == ({"retry-after": "8"} if status == 503 else {})
    assert "openai_compatible:mylab/llama-3" in error.message
    openai = orjson.loads(error.openai_body())["error"]
    assert openai["code"] == code and openai["message"] == error.message
    assert orjson.loads(error.anthropic_body())["error"]["type"] == anthropic_type
    refused = realtime_refusal(AllAttemptsFailedError(trace, None))
    if status == 503:
        assert refused is None, "a transient skip stays the session's `llm_unavailable`"
    else:
        assert refused is not None and (refused.code, refused.status) == (code, status)
        assert refused.error_type == error.type


def test_a_call_that_found_the_servers_connections_busy_says_so_on_both_wires() -> None:
    busy = ProviderError(ErrorClass.OVERLOADED, "all 1,000 busy", provider="openai", pool_exhausted=True)
    trace = AttemptTrace(intent="chat")
    trace.add(
        TraceEntry(ref="openai/gpt-4o", profile_id="openai:main", outcome=Outcome.FAILED, reason="overloaded")
    )
    error = from_exception(AllAttemptsFailedError(trace, busy))
    assert error is not None and (error.status, error.code) == (503, "upstream_connections_busy")
    assert error.headers() == {"retry-after": "1"}
    assert "this server's connections" in orjson.loads(error.openai_body())["error"]["message"]
    assert orjson.loads(error.anthropic_body())["error"]["type"] == "overloaded_error"
    # The upstream's own overload keeps its answer.
    upstream = from_exception(
        AllAttemptsFailedError(trace, ProviderError(ErrorClass.OVERLOADED, "529", provider="openai"))
    )
    assert upstream is not None and upstream.code == "upstream_overloaded"


def test_an_attempt_that_failed_keeps_the_upstream_answer() -> None:
    trace = AttemptTrace(intent="chat")
    trace.add(
        TraceEntry(
            ref="openai/gpt-4o", profile_id="openai:main", outcome=Outcome.SKIPPED, reason="capability:tools"
        )
    )
    trace.add(
        TraceEntry(ref="mistral/x", profile_id="mistral:default", outcome=Outcome.FAILED, reason="timeout")
    )
    error = from_exception(
        AllAttemptsFailedError(trace, ProviderError(ErrorClass.TIMEOUT, "slow", provider="mistral"))
    )
    assert error is not None and (error.status, error.code) == (502, "upstream_timeout")
