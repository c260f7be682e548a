"""`AuthThrottle`, what the authentication points call: slowdown through an injected sleep,
lockouts per address (an IPv6 /64 as one), the admin API's 429, and the settings."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from server.auth_throttle import AuthThrottle, client_address, policy_from_settings
from server.auth_throttle_policy import ThrottlePolicy
from server.auth_throttle_store import InProcessFailureStore, NoFailureStore, RedisFailureStore
from server.settings import Settings
from tests.server.throttle_fakes import Clock, Sleeps


def throttle(policy: ThrottlePolicy, clock: Clock, sleeps: Sleeps) -> AuthThrottle:
    return AuthThrottle(policy, InProcessFailureStore(policy, clock=clock), sleep=sleeps)


async def test_failures_are_slowed_past_half_the_limit_then_locked() -> None:
    clock, sleeps = Clock(5_000.0), Sleeps()
    gate = throttle(ThrottlePolicy(limit=10, window=60, lockout=300), clock, sleeps)
    answers = [await gate.failed("203.0.113.9") for _ in range(9)]
    assert answers == [None] * 9
    assert sleeps.asked == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert await gate.failed("203.0.113.9") == pytest.approx(300.0)
    assert await gate.failed("203.0.113.9") == pytest.approx(300.0)
    assert len(sleeps.asked) == 4  # a lockout is answered at once
    clock.now += 120
    assert await gate.locked("203.0.113.9") == pytest.approx(180.0)
    assert await gate.locked("203.0.113.10") is None
    clock.now += 180
    assert await gate.locked("203.0.113.9") is None
    assert await gate.failed("203.0.113.9") is None


async def test_one_ipv6_host_cannot_rotate_through_its_64() -> None:
    clock, sleeps = Clock(5_000.0), Sleeps()
    gate = throttle(ThrottlePolicy(limit=3), clock, sleeps)
    for n in range(1, 4):
        await gate.failed(f"2001:db8:0:7::{n}")
    assert await gate.locked("2001:db8:0:7:ffff::1") == pytest.approx(300.0)
    assert await gate.locked("2001:db8:0:8::1") is None


async def test_the_lockout_is_logged_once_with_the_address_in_a_field(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = throttle(ThrottlePolicy(limit=2), Clock(5_000.0), Sleeps())
    with caplog.at_level(logging.WARNING, logger="patchbay.auth"):
        for _ in range(5):
            await gate.failed("192.0.2.1", surface="v1")
    lines = [r for r in caplog.records if "locked out" in r.getMessage()]
    assert len(lines) == 1
    assert "192.0.2.1" not in lines[0].getMessage()
    assert lines[0].fields == {  # type: ignore[attr-defined]
        "address": "192.0.2.1",
        "surface": "v1",
        "failures": 2,
        "lockout_seconds": 300,
    }


async def test_off_counts_nothing() -> None:
    gate = AuthThrottle.off()
    assert all([await gate.failed("192.0.2.1") is None for _ in range(50)])
    assert await gate.locked("192.0.2.1") is None


def test_client_address() -> None:
    assert client_address({"type": "http", "client": ("198.51.100.2", 443)}) == "198.51.100.2"
    assert client_address({"type": "http", "client": None}) is None
    assert client_address({"type": "http"}) is None


async def test_settings_make_the_policy_and_the_store(tmp_path: Path, redis_url: str) -> None:
    settings = Settings(data_dir=tmp_path)
    assert policy_from_settings(settings) == ThrottlePolicy(limit=10, window=60.0, lockout=300.0)
    tuned = Settings(
        data_dir=tmp_path, auth_failure_limit=4, auth_failure_window_seconds=30, auth_lockout_seconds=900
    )
    assert policy_from_settings(tuned) == ThrottlePolicy(limit=4, window=30.0, lockout=900.0)
    assert policy_from_settings(Settings(data_dir=tmp_path, auth_failure_limit=0)) is None
    assert isinstance(AuthThrottle.from_settings(settings).store, InProcessFailureStore)
    assert isinstance(AuthThrottle.from_settings(Settings(auth_failure_limit=0)).store, NoFailureStore)
    shared = AuthThrottle.from_settings(settings.model_copy(update={"redis_url": redis_url}))
    assert isinstance(shared.store, RedisFailureStore)
    await shared.aclose()
    with pytest.raises(ValueError):
        Settings(auth_failure_window_seconds=0)
