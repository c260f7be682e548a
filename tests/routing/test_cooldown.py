from __future__ import annotations

from providers.contract import ErrorClass
from routing.cooldown import (
    FRESH,
    Failure,
    Lane,
    ProfileState,
    apply_failure,
    apply_success,
    block_for,
    order_profiles,
    state_from_dict,
    state_to_dict,
)
from tests.routing.fakes import conn

T0 = 1_000_000.0


def fail_n(
    state: ProfileState, error_class: ErrorClass, times: int, *, model: str = "m", step: float = 0.0
) -> tuple[ProfileState, list[float]]:
    """Apply failures, each just after the previous window expired; return the window lengths."""
    now = T0
    windows = []
    for _ in range(times):
        state = apply_failure(state, Failure(error_class, model), now)
        until = (
            state.disabled_until
            if state.disabled_until and state.disabled_until > now
            else state.cooldown_until
        )
        assert until is not None
        windows.append(until - now)
        now = until + step
    return state, windows


def test_transient_schedule_escalates_then_caps() -> None:
    _, windows = fail_n(FRESH, ErrorClass.SERVER_ERROR, 5)
    assert windows == [30, 60, 300, 300, 300]


def test_rate_limit_doubles_without_retry_after() -> None:
    _, windows = fail_n(FRESH, ErrorClass.RATE_LIMIT, 4)
    assert windows == [30, 60, 120, 240]


def test_rate_limit_caps_at_a_day() -> None:
    _, windows = fail_n(FRESH, ErrorClass.RATE_LIMIT, 20)
    assert max(windows) == 86_400


def test_rate_limit_honours_retry_after() -> None:
    state = apply_failure(FRESH, Failure(ErrorClass.RATE_LIMIT, "m", retry_after=7.5), T0)
    assert state.cooldown_until == T0 + 7.5
    assert state.cooldown_reason == "rate_limit"


def test_transient_retry_after_is_a_minimum() -> None:
    state = apply_failure(FRESH, Failure(ErrorClass.OVERLOADED, "m", retry_after=90), T0)
    assert state.cooldown_until == T0 + 90
    state = apply_failure(FRESH, Failure(ErrorClass.OVERLOADED, "m", retry_after=2), T0)
    assert state.cooldown_until == T0 + 30


def test_billing_disables_ten_minutes_doubling_to_a_day() -> None:
    state, windows = fail_n(FRESH, ErrorClass.QUOTA_EXHAUSTED, 10)
    assert windows[:4] == [600, 1200, 2400, 4800]
    assert windows[-1] == 86_400
    assert state.disabled_reason == "billing"


def test_auth_disables_ten_minutes_capped_at_an_hour() -> None:
    _, windows = fail_n(FRESH, ErrorClass.AUTH, 5)
    assert windows == [600, 1200, 2400, 3600, 3600]


def test_active_window_is_never_extended() -> None:
    state = apply_failure(FRESH, Failure(ErrorClass.RATE_LIMIT, "m", retry_after=10), T0)
    later = apply_failure(state, Failure(ErrorClass.RATE_LIMIT, "m", retry_after=500), T0 + 5)
    assert later.cooldown_until == T0 + 10
    assert later.failure_counts["rate_limit"] == 2
    disabled = apply_failure(FRESH, Failure(ErrorClass.AUTH, "m"), T0)
    again = apply_failure(disabled, Failure(ErrorClass.AUTH, "m"), T0 + 100)
    assert again.disabled_until == T0 + 600


def test_rate_limit_is_scoped_to_the_model() -> None:
    state = apply_failure(FRESH, Failure(ErrorClass.RATE_LIMIT, "gpt-4o", retry_after=60), T0)
    assert block_for(state, "gpt-4o", T0 + 1) is not None
    assert block_for(state, "gpt-4o-mini", T0 + 1) is None
    assert block_for(state, "gpt-4o", T0 + 60) is None


def test_second_model_failing_widens_the_scope() -> None:
    state = apply_failure(FRESH, Failure(ErrorClass.RATE_LIMIT, "a", retry_after=60), T0)
    state = apply_failure(state, Failure(ErrorClass.RATE_LIMIT, "b", retry_after=60), T0 + 1)
    assert state.cooldown_model is None
    assert state.cooldown_until == T0 + 60
    assert block_for(state, "c", T0 + 2) is not None


def test_profile_wide_failures_block_every_model() -> None:
    state = apply_failure(FRESH, Failure(ErrorClass.SERVER_ERROR, "a"), T0)
    block = block_for(state, "other", T0 + 1)
    assert block is not None and block.label == "cooldown:server_error"


def test_disable_wins_over_cooldown() -> None:
    state = apply_failure(FRESH, Failure(ErrorClass.RATE_LIMIT, "m", retry_after=60), T0)
    state = apply_failure(state, Failure(ErrorClass.QUOTA_EXHAUSTED, "m"), T0 + 1)
    block = block_for(state, "m", T0 + 2)
    assert block is not None and block.lane is Lane.DISABLED and block.reason == "billing"


def test_request_caused_failures_leave_the_profile_alone() -> None:
    for error_class in (ErrorClass.CONTEXT_LENGTH, ErrorClass.CONTENT_FILTER, ErrorClass.INVALID_REQUEST):
        assert apply_failure(FRESH, Failure(error_class, "m"), T0) is FRESH


def test_success_resets_counters() -> None:
    state, _ = fail_n(FRESH, ErrorClass.SERVER_ERROR, 3)
    state = apply_success(state, "m", T0 + 10_000)
    assert state == ProfileState(last_used=T0 + 10_000)
    state = apply_failure(state, Failure(ErrorClass.SERVER_ERROR, "m"), T0 + 10_001)
    assert state.cooldown_until == T0 + 10_001 + 30


def test_success_on_another_model_keeps_an_active_model_cooldown() -> None:
    state = apply_failure(FRESH, Failure(ErrorClass.RATE_LIMIT, "a", retry_after=60), T0)
    state = apply_success(state, "b", T0 + 1)
    assert state.last_used == T0 + 1
    assert block_for(state, "a", T0 + 2) is not None
    assert apply_success(state, "a", T0 + 3) == ProfileState(last_used=T0 + 3)


def test_counters_reset_after_a_quiet_day() -> None:
    state, _ = fail_n(FRESH, ErrorClass.SERVER_ERROR, 3)
    later = apply_failure(state, Failure(ErrorClass.SERVER_ERROR, "m"), T0 + 2 * 86_400)
    assert later.error_count == 1
    assert later.cooldown_until == T0 + 2 * 86_400 + 30


def test_order_round_robin_least_recently_used_first() -> None:
    a, b, c = conn("openai", "a"), conn("openai", "b"), conn("openai", "c")
    states = {"openai:a": ProfileState(last_used=T0 - 1), "openai:b": ProfileState(last_used=T0 - 5)}
    order = order_profiles([a, b, c], states, "m", T0, explicit=False)
    assert [x.name for x, _ in order] == ["c", "b", "a"]


def test_order_explicit_keeps_order_and_puts_blocked_last_by_expiry() -> None:
    a, b, c, d = (conn("openai", n, position=i + 1) for i, n in enumerate("abcd"))
    states = {
        "openai:a": apply_failure(FRESH, Failure(ErrorClass.AUTH, "m"), T0),  # until T0+600
        "openai:b": apply_failure(FRESH, Failure(ErrorClass.SERVER_ERROR, "m"), T0),  # until T0+30
        "openai:d": ProfileState(last_used=T0),
    }
    order = order_profiles([a, b, c, d], states, "m", T0 + 1, explicit=True)
    assert [(x.name, blk.label if blk else None) for x, blk in order] == [
        ("c", None),
        ("d", None),
        ("b", "cooldown:server_error"),
        ("a", "disabled:auth"),
    ]


def test_state_round_trips_through_json_shape() -> None:
    state = apply_failure(FRESH, Failure(ErrorClass.RATE_LIMIT, "m", retry_after=3), T0)
    assert state_from_dict(state_to_dict(state)) == state
    assert state_from_dict({}) == FRESH
