"""The routed API with `PATCHBAY_REDIS_URL` pointing at a Redis that is not there: requests are
served, and the rate limit and cooldowns still hold in the process."""

from __future__ import annotations

import logging

import pytest

from routing.cooldown_store import RedisCooldownStore
from server.settings import Settings
from server.v1.ratelimit import RateLimit, RedisRateLimiter
from tests.emulators.harness import free_port
from tests.emulators.openai_errors import rate_limited
from tests.server.v1.conftest import Patchbay, Upstreams

CHAT = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}
PASSWORD = "hunter2-secret"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"redis_url": f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"})


@pytest.mark.parametrize("rate_limit", [RateLimit(requests=2, per_seconds=60)])
async def test_chat_is_served_and_limited_in_process_with_redis_down(
    patchbay: Patchbay, upstreams: Upstreams, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    gateway = patchbay.services.gateway
    assert gateway is not None
    assert isinstance(gateway.rate_limiter, RedisRateLimiter) and isinstance(
        gateway.cooldowns, RedisCooldownStore
    )
    upstreams.openai.enqueue(rate_limited(30))
    async with patchbay.client() as c:
        first = await c.post("/v1/chat/completions", json=CHAT)
        second = await c.post("/v1/chat/completions", json=CHAT)
        third = await c.post("/v1/chat/completions", json=CHAT)
    assert first.status_code == 200
    assert first.headers["x-patchbay-route"].startswith("openai:main/gpt-4o-mini=failed:rate_limit;")
    assert second.status_code == 200  # the cooldown recorded in process is honoured
    assert second.headers["x-patchbay-route"].startswith(
        "openai:main/gpt-4o-mini=skipped:cooldown:rate_limit;"
    )
    # The per-process bucket (real time, which moves while the requests run): at most the 30 s
    # one request takes to refill, never nothing.
    assert third.status_code == 429 and 0 < int(third.headers["retry-after"]) <= 30
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings.count("rate limit store unreachable; limiting requests per process until it is back") == 1
    assert (
        warnings.count(
            "cooldown store unreachable; keeping auth-profile cooldowns in this process until it is back"
        )
        == 1
    )
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    logged = " ".join(r.getMessage() + str(getattr(r, "fields", "")) for r in caplog.records)
    assert PASSWORD not in logged
