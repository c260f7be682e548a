"""The throttle's pure steps on a time the test chooses: counting, windows, lockouts, delays, addresses."""

from __future__ import annotations

import pytest

from server.auth_throttle_policy import (
    EMPTY,
    UNKNOWN_ADDRESS,
    FailureState,
    ThrottlePolicy,
    address_key,
    expired,
    lock_remaining,
    record_failure,
)

POLICY = ThrottlePolicy(limit=10, window=60.0, lockout=300.0)


def fail(
    times: int, state: FailureState = EMPTY, *, at: float = 1_000.0, policy: ThrottlePolicy = POLICY
) -> FailureState:
    for _ in range(times):
        state, _outcome = record_failure(policy, state, at)
    return state


def test_the_limit_th_failure_in_a_window_locks_the_address() -> None:
    state = EMPTY
    counts = []
    for n in range(9):
        state, outcome = record_failure(POLICY, state, 1_000.0 + n)
        counts.append(outcome.count)
        assert outcome.retry_after is None
    assert counts == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    state, outcome = record_failure(POLICY, state, 1_009.0)
    assert outcome.count == 10 and outcome.retry_after == 300.0
    assert lock_remaining(state, 1_009.0) == 300.0


def test_while_locked_attempts_are_not_counted_and_the_lockout_is_not_extended() -> None:
    locked = fail(10)
    state, outcome = record_failure(POLICY, locked, 1_100.0)
    assert state == locked and outcome.count == 0 and outcome.retry_after == pytest.approx(200.0)
    assert lock_remaining(state, 1_299.5) == pytest.approx(0.5)
    assert lock_remaining(state, 1_300.0) is None


def test_after_the_lockout_the_address_starts_again_from_nothing() -> None:
    state, outcome = record_failure(POLICY, fail(10), 1_300.0)
    assert outcome.count == 1 and outcome.retry_after is None and lock_remaining(state, 1_300.0) is None


def test_a_window_that_has_passed_is_forgotten() -> None:
    state = fail(9)
    assert state.count == 9
    state, outcome = record_failure(POLICY, state, 1_059.9)  # still the same window: the 10th locks
    assert outcome.retry_after == 300.0
    state, outcome = record_failure(POLICY, fail(9), 1_060.0)  # the window opened at 1000 is over
    assert outcome.count == 1 and outcome.retry_after is None
    assert state.window_start == 1_060.0


def test_expired_says_when_a_state_can_be_dropped() -> None:
    assert expired(POLICY, EMPTY, 0.0)
    assert not expired(POLICY, fail(3), 1_059.0) and expired(POLICY, fail(3), 1_060.0)
    assert not expired(POLICY, fail(10), 1_299.0) and expired(POLICY, fail(10), 1_300.0)


def test_delays_start_past_half_the_limit_grow_and_are_capped() -> None:
    assert [POLICY.delay(n) for n in range(1, 10)] == pytest.approx([0, 0, 0, 0, 0, 0.1, 0.2, 0.3, 0.4])
    wide = ThrottlePolicy(limit=100, slow_step=0.1, slow_cap=2.0)
    assert wide.delay(50) == 0 and wide.delay(51) == pytest.approx(0.1)
    assert wide.delay(70) == pytest.approx(2.0) and wide.delay(99) == 2.0


@pytest.mark.parametrize(
    "bad",
    [
        {"limit": 0},
        {"window": 0},
        {"lockout": -1},
        {"slow_step": -0.1},
        {"slow_cap": -1},
    ],
)
def test_a_policy_refuses_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ThrottlePolicy(**bad)  # type: ignore[arg-type]


def test_ipv6_hosts_are_grouped_by_their_64() -> None:
    one = address_key("2001:db8:1:2:aaaa::1")
    assert one == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:2:ffff:ffff:ffff:ffff") == one
    assert address_key("2001:db8:1:2:aaaa::1%eth0") == one
    assert address_key("2001:db8:1:3::1") != one


def test_ipv4_addresses_and_everything_else() -> None:
    assert address_key("203.0.113.7") == "203.0.113.7"
    assert address_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert address_key("203.0.113.8") != address_key("203.0.113.7")
    assert address_key(None) == address_key("") == UNKNOWN_ADDRESS
    assert address_key("testclient") == "host:testclient"
    assert len(address_key("x" * 10_000)) < 120
