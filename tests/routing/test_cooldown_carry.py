"""Carrying imported auth-profile state over ours: later windows win, and twice is once."""

from __future__ import annotations

from providers.contract import ErrorClass
from routing.cooldown import FRESH, Failure, Lane, ProfileState, apply_failure, block_for
from routing.cooldown_carry import carry_over

T0 = 1_000_000.0
IMPORTED = ProfileState(
    last_used=T0 - 50,
    last_failure_at=T0 - 10,
    error_count=2,
    failure_counts={"rate_limit": 2},
    cooldown_until=T0 + 30,
    cooldown_reason="rate_limit",
    cooldown_model="gpt-5.2",
    disabled_until=T0 + 600,
    disabled_reason="billing",
)


def test_a_carried_window_then_follows_our_policy() -> None:
    """A failure inside the carried window does not extend it (windows are immutable while active)."""
    carried = carry_over(FRESH, IMPORTED)
    after = apply_failure(carried, Failure(ErrorClass.RATE_LIMIT, "gpt-5.2"), T0 + 5)
    assert after.cooldown_until == T0 + 30 and after.failure_counts["rate_limit"] == 3


def test_a_fresh_profile_takes_the_imported_state() -> None:
    assert carry_over(FRESH, IMPORTED) == IMPORTED


def test_carrying_twice_changes_nothing_more() -> None:
    once = carry_over(FRESH, IMPORTED)
    assert carry_over(once, IMPORTED) == once


def test_each_window_keeps_the_later_end_and_counters_the_larger_value() -> None:
    longer = ProfileState(
        error_count=5, failure_counts={"overloaded": 5}, cooldown_until=T0 + 120, cooldown_reason="overloaded"
    )
    merged = carry_over(longer, IMPORTED)
    assert (merged.cooldown_until, merged.cooldown_reason, merged.cooldown_model) == (
        T0 + 120,
        "overloaded",
        None,
    )
    assert (merged.disabled_until, merged.disabled_reason) == (T0 + 600, "billing")
    assert merged.error_count == 5 and merged.failure_counts == {"overloaded": 5, "rate_limit": 2}
    assert merged.last_failure_at == T0 - 10 and merged.last_used == T0 - 50
    block = block_for(merged, "other-model", T0 + 1)
    assert block is not None and block.lane is Lane.DISABLED
