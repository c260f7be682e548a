"""The Redis client's bounded cost, and the outage bookkeeping every Redis user shares."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from routing.redis_health import StoreHealth, redis_client
from tests.emulators.tcp_proxy import SilentServer

log = logging.getLogger("patchbay.test")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def health(clock: Clock, backoff: float = 2.0) -> StoreHealth:
    return StoreHealth("test store", "doing without it", logger=log, backoff=backoff, clock=clock)


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == log.name and r.levelno == logging.WARNING]


def test_one_warning_per_outage_and_one_probe_per_backoff(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    clock = Clock()
    h = health(clock)
    assert h.should_try() and h.should_try()  # healthy: every call tries
    assert not h.succeeded()  # not the end of an outage
    h.failed(ConnectionError("Error 111 connecting to redis://:hunter2@10.0.0.1"))
    h.failed(OSError())  # a second failure in the same outage
    assert (h.down, h.failures) == (True, 2)
    assert not h.should_try()
    clock.now += 1.9
    assert not h.should_try()
    clock.now += 0.1
    assert h.should_try()  # the probe
    assert not h.should_try()  # the others keep to the fallback while it is out
    h.failed(ConnectionError())
    clock.now += 1.9
    assert not h.should_try()  # the back-off starts again from the failed probe
    clock.now += 0.1
    assert h.should_try()
    assert h.succeeded() and not h.down
    assert not h.succeeded()
    assert h.should_try()
    [warning] = warnings(caplog)
    assert warning.getMessage() == "test store unreachable; doing without it until it is back"
    assert getattr(warning, "fields", None) == {"error": "ConnectionError"}
    assert "hunter2" not in " ".join(r.getMessage() + str(getattr(r, "fields", "")) for r in caplog.records)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        "test store reachable again"
    ]
    h.failed(RedisTimeoutError())  # a new outage is reported again
    assert [getattr(r, "fields", None) for r in warnings(caplog)][1:] == [{"error": "TimeoutError"}]


def test_backoff_validation() -> None:
    with pytest.raises(ValueError):
        StoreHealth("s", "f", logger=log, backoff=-1)


@pytest.fixture
async def silent() -> AsyncIterator[SilentServer]:
    async with SilentServer() as server:
        yield server


async def test_the_client_gives_up_after_one_retry(silent: SilentServer) -> None:
    client = redis_client(f"redis://127.0.0.1:{silent.port}/0", timeout=0.2)
    # The cost of an unanswered call is attempts x per-attempt timeout; both are read off, not
    # timed. The server never answers, so only the socket timeout can end an attempt.
    assert client.connection_pool.connection_kwargs["socket_timeout"] == 0.2
    assert client.connection_pool.connection_kwargs["socket_connect_timeout"] == 0.2
    try:
        async with asyncio.timeout(30):  # a bound on a hang (no socket timeout), not a measurement
            with pytest.raises(RedisTimeoutError):
                await client.get("k")
    finally:
        await client.aclose()
    assert silent.accepted == 2  # the call and one retry on a fresh connection, no more
