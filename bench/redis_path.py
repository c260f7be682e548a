"""Client-side CPU per request of the two Redis stores on the /v1 path, at c=50 against one Redis.

The cooldown store's read of the candidates plus the success behind the answer, and the
per-key rate limiter's hit, each 5,000 times from 50 concurrent tasks: process CPU and wall
time per request. Runs against an older checkout too (A/B: `PYTHONPATH=<checkout>`), which has
no copy to switch on. Use a Redis of your own: keys go under `micro:` and are deleted after.

    .venv/bin/python bench/redis_path.py [redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis.asyncio import Redis

from routing.cooldown_store import RedisCooldownStore
from server.v1.ratelimit import RateLimit, RedisRateLimiter

URL = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0"
REQUESTS = 5000
CONCURRENCY = 50


async def per_request(call: Callable[[], Awaitable[None]]) -> str:
    async def worker() -> None:
        for _ in range(REQUESTS // CONCURRENCY):
            await call()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return f"cpu {cpu / REQUESTS * 1e6:.0f} us/request, wall {wall / REQUESTS * 1e6:.0f} us/request"


async def main() -> None:
    ids = ["openai:default", "mistral:default"]
    store = RedisCooldownStore(Redis.from_url(URL), prefix="micro:")
    if hasattr(store, "notice_channel"):  # the copy is used while notices are heard
        store.listening = True

    async def plan() -> None:
        await store.get_many("org", ids)
        await store.record_success("org", ids[0], "m", time.time())

    print("cooldown read + success:", await per_request(plan))
    await store.aclose()
    limiter = RedisRateLimiter(Redis.from_url(URL), RateLimit(1_000_000, 60), prefix="micro:")

    async def hit() -> None:
        assert (await limiter.hit("k")).allowed

    print("rate limit hit:", await per_request(hit))
    await limiter.aclose()
    client = Redis.from_url(URL)
    keys = [key async for key in client.scan_iter(match="micro:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
