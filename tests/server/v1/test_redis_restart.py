"""Redis killed and started again under load: no request fails, and the gateway goes back to
the shared state on its own, without a restart (docs/reliability.md#redis-stopped-and-restarted).

The gateway runs on a private `redis-server` (tests/private_services.py), never the shared one.
Four clients send chat requests the whole time. Redis is killed (SIGKILL) mid-load and started
again empty on the same port; the test then waits (polling, bounded) until the rate limiter has
written a bucket to the new Redis and a cooldown recorded after the restart lands there too.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.settings import Settings
from server.v1.ratelimit import RateLimit
from tests.emulators.openai_errors import rate_limited
from tests.private_services import PrivateRedis, private_redis
from tests.server.v1.conftest import Patchbay, Upstreams
from tests.server.v1.load import BOUND, load

pytestmark = [
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
    pytest.mark.parametrize("rate_limit", [RateLimit(requests=100_000, per_seconds=60)]),
]
CHAT = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    with private_redis(tmp_path) as redis:
        yield redis


@pytest.fixture
def settings(settings: Settings, redis_server: PrivateRedis) -> Settings:
    return settings.model_copy(update={"redis_url": redis_server.url})


async def keys(redis: Redis, pattern: str) -> list[bytes]:
    with contextlib.suppress(OSError, RedisError):
        return [k async for k in redis.scan_iter(match=pattern)]
    return []


async def _exists(redis: Redis, key: str) -> bool:
    with contextlib.suppress(OSError, RedisError):
        return bool(await redis.exists(key))
    return False


async def test_chat_under_load_survives_redis_killed_and_restarted(
    patchbay: Patchbay, upstreams: Upstreams, redis_server: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    cooldown = f"patchbay:cooldown:{patchbay.org_id}:openai:main"
    redis = Redis.from_url(redis_server.url)
    found: list[bytes] = []

    def logged(message: str) -> bool:
        return any(r.getMessage() == message for r in caplog.records)

    try:
        async with load(patchbay) as running:
            await running.more(12)
            assert await keys(redis, "patchbay:ratelimit:*"), "the limiter keeps its buckets in Redis"

            redis_server.kill()
            await running.until(
                lambda: logged(
                    "rate limit store unreachable; limiting requests per process until it is back"
                ),
                "the limiter noticed the outage",
            )
            # A cooldown recorded during the outage is held by this process meanwhile.
            upstreams.openai.enqueue(rate_limited(30))
            await running.more(8)

            redis_server.start()
            await running.until(lambda: logged("rate limit store reachable again"), "the limiter recovered")

            async def refresh() -> None:
                found[:] = await keys(redis, "patchbay:ratelimit:*")

            deadline = time.monotonic() + BOUND
            while not found:
                assert time.monotonic() < deadline, "no bucket written to the restarted Redis"
                await refresh()
                await running.more(2)
            # A cooldown recorded after the restart is shared again through Redis.
            upstreams.openai.enqueue(rate_limited(30))
            deadline = time.monotonic() + BOUND
            while not await _exists(redis, cooldown):
                assert time.monotonic() < deadline, "the cooldown never reached the restarted Redis"
                await running.more(2)
                upstreams.openai.enqueue(rate_limited(30))
        statuses = running.statuses
    finally:
        await redis.aclose()

    assert statuses and set(statuses) == {200}, f"failed requests: {sorted(set(statuses))}"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
