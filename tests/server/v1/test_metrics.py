"""`GET /metrics` on a real server: the operator token only, counts that follow known traffic,
and nothing secret in any label."""

from __future__ import annotations

import httpx

from providers.contract import ErrorClass
from tests.emulators.openai import fail
from tests.server.metrics_text import Samples, samples, total, value
from tests.server.v1.conftest import CANARIES, Patchbay, Upstreams

ADMIN = "admin-test-token-0123456789abcdefghij"
CHAT = {"model": "default", "messages": [{"role": "user", "content": "the-secret-prompt-CANARY"}]}


async def scrape(pb: Patchbay) -> Samples:
    async with pb.client(ADMIN) as http:
        got = await http.get("/metrics")
    assert got.status_code == 200, got.text
    assert got.headers["content-type"].startswith("text/plain")
    return samples(got.text)


async def test_metrics_refuse_anyone_but_the_operator(patchbay: Patchbay) -> None:
    async with httpx.AsyncClient(base_url=patchbay.url) as http:
        assert (await http.get("/metrics")).status_code == 401
        wrong = await http.get("/metrics", headers={"authorization": "Bearer not-the-token"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        assert "PATCHBAY_ADMIN_TOKEN" in wrong.json()["error"]["message"]
    async with patchbay.client() as http:  # an org's API key is no operator
        assert (await http.get("/metrics")).status_code == 401
    await scrape(patchbay)


async def test_counters_follow_known_traffic(patchbay: Patchbay, upstreams: Upstreams) -> None:
    before = await scrape(patchbay)
    n = 5
    prompt = completion = 0
    async with patchbay.client() as http:
        for _ in range(n):
            got = await http.post("/v1/chat/completions", json=CHAT)
            assert got.status_code == 200, got.text
            prompt += got.json()["usage"]["prompt_tokens"]
            completion += got.json()["usage"]["completion_tokens"]
        assert (await http.get("/v1/models")).status_code == 200
    after = await scrape(patchbay)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = {"method": "POST", "route": "/v1/chat/completions", "status": "200"}
    assert delta("patchbay_http_requests_total", **route) == n
    assert delta("patchbay_http_requests_total", method="GET", route="/v1/models", status="200") == 1
    assert delta("patchbay_http_request_duration_seconds_count", route="/v1/chat/completions") == n
    served = {"provider": "openai", "protocol": "openai-chat", "outcome": "served", "error_class": ""}
    assert delta("patchbay_upstream_attempts_total", **served) == n
    byok = {"billing_source": "byok", "segment": "llm"}
    assert delta("patchbay_tokens_total", **byok, direction="input") == prompt
    assert delta("patchbay_tokens_total", **byok, direction="output") == completion


async def test_buffered_writes_are_counted_by_buffer(patchbay: Patchbay) -> None:
    svc = patchbay.services
    await svc.usage.flush()
    await svc.gateway.request_log.flush()
    before = await scrape(patchbay)
    n = 3
    async with patchbay.client() as http:
        for _ in range(n):
            assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 200
    # Whatever the background writers took meanwhile, these write the rest.
    await svc.usage.flush()
    await svc.gateway.request_log.flush()
    after = await scrape(patchbay)
    for buffer in ("usage", "request_log"):
        written = {"buffer": buffer, "outcome": "written"}
        got = value(after, "patchbay_buffered_entries_total", **written)
        assert got - value(before, "patchbay_buffered_entries_total", **written) == n
        assert value(after, "patchbay_buffered_entries_pending", buffer=buffer) == 0
        assert value(after, "patchbay_buffered_write_failures_total", buffer=buffer) == 0


async def test_a_fallback_and_a_cooldown_are_counted(patchbay: Patchbay, upstreams: Upstreams) -> None:
    before = await scrape(patchbay)
    # Retry-After beyond the runner's retry wait: no retry, a fallback to mistral at once.
    body = {"error": {"message": "slow down", "type": "rate_limit"}}
    upstreams.openai.enqueue(fail(429, body, {"retry-after": "30"}))
    async with patchbay.client() as http:
        got = await http.post("/v1/chat/completions", json=CHAT)
        assert got.status_code == 200, got.text
        again = await http.post("/v1/chat/completions", json=CHAT)  # openai:main cools down: skipped
        assert again.status_code == 200, again.text
    after = await scrape(patchbay)

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    limited = ErrorClass.RATE_LIMIT.value
    assert (
        delta("patchbay_upstream_attempts_total", provider="openai", outcome="failed", error_class=limited)
        == 1
    )
    assert delta("patchbay_upstream_attempts_total", provider="mistral", outcome="served") == 2
    assert delta("patchbay_fallbacks_total", reason=limited) == 1
    assert delta("patchbay_cooldown_transitions_total", lane="cooldown", reason=limited) == 1
    assert delta("patchbay_skips_total", reason="cooldown") == 1


async def test_no_secret_reaches_the_metrics(patchbay: Patchbay, upstreams: Upstreams) -> None:
    async with patchbay.client() as http:
        assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 200
        # Raw paths never become labels: only route templates and fixed families do.
        await http.get(f"/v1/models/{CANARIES[0]}")
        await http.get(f"/nowhere/{CANARIES[1]}")
    async with httpx.AsyncClient(base_url=patchbay.url) as anon:
        await anon.get(
            f"/admin/v1/orgs/{patchbay.org_id}", headers={"authorization": f"Bearer {CANARIES[0]}"}
        )
    async with patchbay.client(ADMIN) as http:
        await http.get(f"/admin/v1/orgs/{patchbay.org_id}")
        text = (await http.get("/metrics")).text
    for secret in (*CANARIES, ADMIN, patchbay.key, patchbay.agent_key, patchbay.org_id, "the-secret-prompt"):
        assert secret not in text
    assert 'route="/admin/v1/orgs/{org_id}"' in text or "/admin/v1/orgs/{" in text
    assert 'route="unmatched"' in text
