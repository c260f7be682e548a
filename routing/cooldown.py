"""The auth-profile policy: cooldowns, disables and profile order, as pure functions.

State transitions take `(state, failure, now)` and return the next state; nothing here reads
a clock or a store, so the schedule is tested on plain numbers. `now` is wall-clock seconds
since the epoch (replicas compare windows, so it must be absolute, not monotonic).

The schedule (docs/routing.md#cooldowns-and-disables, with where it differs from OpenClaw's):
- transient failures (timeout, overloaded, server error, network, not found, permission):
  a cooldown of 30 s, 1 min, then 5 min, indexed by the failures since the last success;
- rate limits: the provider's retry-after when it sent one, else 30 s doubling per
  consecutive rate limit, capped at 24 h; scoped to the model that was limited;
- billing (quota exhausted): disabled for 10 min doubling, capped at 24 h;
- auth (invalid or revoked key): disabled for 10 min doubling, capped at 1 h.
An active window is never extended by further failures; a success resets the counters;
counters also reset after 24 h without a failure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from providers.contract import ErrorClass
from routing.model import ConnectionView


class Lane(StrEnum):
    COOLDOWN = "cooldown"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class _Rule:
    reason: str
    lane: Lane
    model_scoped: bool


_RULES: Mapping[ErrorClass, _Rule] = MappingProxyType(
    {
        ErrorClass.RATE_LIMIT: _Rule("rate_limit", Lane.COOLDOWN, model_scoped=True),
        ErrorClass.TIMEOUT: _Rule("timeout", Lane.COOLDOWN, model_scoped=True),
        ErrorClass.NOT_FOUND: _Rule("not_found", Lane.COOLDOWN, model_scoped=True),
        ErrorClass.PERMISSION: _Rule("permission", Lane.COOLDOWN, model_scoped=True),
        ErrorClass.OVERLOADED: _Rule("overloaded", Lane.COOLDOWN, model_scoped=False),
        ErrorClass.SERVER_ERROR: _Rule("server_error", Lane.COOLDOWN, model_scoped=False),
        ErrorClass.NETWORK: _Rule("network", Lane.COOLDOWN, model_scoped=False),
        ErrorClass.QUOTA_EXHAUSTED: _Rule("billing", Lane.DISABLED, model_scoped=False),
        ErrorClass.AUTH: _Rule("auth", Lane.DISABLED, model_scoped=False),
    }
)
"""Context length, content filter and invalid request are caused by the request, not the
profile: they leave its state alone."""


@dataclass(frozen=True, slots=True)
class Schedule:
    transient_steps: tuple[float, ...] = (30.0, 60.0, 300.0)
    rate_limit_base: float = 30.0
    rate_limit_max: float = 86_400.0
    billing_base: float = 600.0
    billing_max: float = 86_400.0
    auth_base: float = 600.0
    auth_max: float = 3_600.0
    failure_window: float = 86_400.0
    min_window: float = 1.0
    """A retry-after of 0 still opens a window, so the failing profile is not hammered."""


DEFAULT_SCHEDULE = Schedule()


@dataclass(frozen=True, slots=True)
class Failure:
    error_class: ErrorClass
    model: str
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class ProfileState:
    """What the router remembers about one auth profile; timestamps are epoch seconds."""

    last_used: float = 0.0
    last_failure_at: float | None = None
    error_count: int = 0
    failure_counts: Mapping[str, int] = field(default_factory=dict)
    cooldown_until: float | None = None
    cooldown_reason: str | None = None
    cooldown_model: str | None = None
    """None: the cooldown covers every model of the profile."""
    disabled_until: float | None = None
    disabled_reason: str | None = None


FRESH = ProfileState()


@dataclass(frozen=True, slots=True)
class Block:
    """Why a profile cannot serve a model right now, and until when."""

    lane: Lane
    reason: str
    until: float

    @property
    def label(self) -> str:
        return f"{self.lane.value}:{self.reason}"


def _doubling(base: float, cap: float, count: int) -> float:
    exponent: int = min(max(count - 1, 0), 40)
    return float(min(cap, base * (1 << exponent)))


def _disable_seconds(reason: str, count: int, schedule: Schedule) -> float:
    if reason == "billing":
        return _doubling(schedule.billing_base, schedule.billing_max, count)
    return _doubling(schedule.auth_base, schedule.auth_max, count)


def _cooldown_seconds(rule: _Rule, state: ProfileState, failure: Failure, schedule: Schedule) -> float:
    if rule.reason == "rate_limit":
        if failure.retry_after is not None:
            return min(max(failure.retry_after, schedule.min_window), schedule.rate_limit_max)
        return _doubling(
            schedule.rate_limit_base, schedule.rate_limit_max, state.failure_counts["rate_limit"]
        )
    steps = schedule.transient_steps
    seconds = steps[min(state.error_count, len(steps)) - 1]
    if failure.retry_after is not None:
        seconds = max(seconds, min(failure.retry_after, schedule.rate_limit_max))
    return seconds


def affects_profile(error_class: ErrorClass) -> bool:
    return error_class in _RULES


def apply_failure(
    state: ProfileState, failure: Failure, now: float, schedule: Schedule = DEFAULT_SCHEDULE
) -> ProfileState:
    """The state after `failure`; unchanged for failures the request itself caused."""
    rule = _RULES.get(failure.error_class)
    if rule is None:
        return state
    if state.last_failure_at is not None and now - state.last_failure_at > schedule.failure_window:
        state = replace(state, error_count=0, failure_counts={})
    counts = dict(state.failure_counts)
    counts[rule.reason] = counts.get(rule.reason, 0) + 1
    state = replace(state, last_failure_at=now, error_count=state.error_count + 1, failure_counts=counts)

    if rule.lane is Lane.DISABLED:
        if state.disabled_until is not None and state.disabled_until > now:
            return state
        return replace(
            state,
            disabled_until=now + _disable_seconds(rule.reason, counts[rule.reason], schedule),
            disabled_reason=rule.reason,
        )

    model = failure.model if rule.model_scoped else None
    if state.cooldown_until is not None and state.cooldown_until > now:
        # The window stands as it is; a failure on another model widens it to the whole profile.
        if state.cooldown_model is not None and state.cooldown_model != model:
            return replace(state, cooldown_model=None)
        return state
    return replace(
        state,
        cooldown_until=now + _cooldown_seconds(rule, state, failure, schedule),
        cooldown_reason=rule.reason,
        cooldown_model=model,
    )


def apply_success(state: ProfileState, model: str, now: float) -> ProfileState:
    """A success resets the counters and windows, except an active cooldown on another model."""
    other_model_cooling = (
        state.cooldown_until is not None
        and state.cooldown_until > now
        and state.cooldown_model is not None
        and state.cooldown_model != model
    )
    if other_model_cooling:
        counts = {k: v for k, v in state.failure_counts.items() if k == state.cooldown_reason}
        return ProfileState(
            last_used=now,
            last_failure_at=state.last_failure_at,
            error_count=sum(counts.values()),
            failure_counts=counts,
            cooldown_until=state.cooldown_until,
            cooldown_reason=state.cooldown_reason,
            cooldown_model=state.cooldown_model,
        )
    return ProfileState(last_used=now)


def block_for(state: ProfileState, model: str, now: float) -> Block | None:
    """Why the profile cannot serve `model` at `now`; a disable wins over a cooldown."""
    if state.disabled_until is not None and state.disabled_until > now:
        return Block(Lane.DISABLED, state.disabled_reason or "unknown", state.disabled_until)
    if (
        state.cooldown_until is not None
        and state.cooldown_until > now
        and (state.cooldown_model is None or state.cooldown_model == model)
    ):
        return Block(Lane.COOLDOWN, state.cooldown_reason or "unknown", state.cooldown_until)
    return None


def order_profiles(
    profiles: Sequence[ConnectionView],
    states: Mapping[str, ProfileState],
    model: str,
    now: float,
    *,
    explicit: bool,
) -> list[tuple[ConnectionView, Block | None]]:
    """Profiles in the order to try them for `model`.

    Available profiles first: in the given (explicit) order, or least recently used first for
    round-robin. Blocked profiles last, soonest expiry first, each with its block.
    """
    available: list[tuple[float, int, ConnectionView]] = []
    blocked: list[tuple[float, int, ConnectionView, Block]] = []
    for index, conn in enumerate(profiles):
        state = states.get(conn.profile_id, FRESH)
        block = block_for(state, model, now)
        if block is None:
            available.append((0.0 if explicit else state.last_used, index, conn))
        else:
            blocked.append((block.until, index, conn, block))
    available.sort(key=_first_two)
    blocked.sort(key=_first_two)
    return [(c, None) for _, _, c in available] + [(c, b) for _, _, c, b in blocked]


def _first_two(item: tuple[float, int, object] | tuple[float, int, object, object]) -> tuple[float, int]:
    return item[0], item[1]


def state_to_dict(state: ProfileState) -> dict[str, Any]:
    return {
        "last_used": state.last_used,
        "last_failure_at": state.last_failure_at,
        "error_count": state.error_count,
        "failure_counts": dict(state.failure_counts),
        "cooldown_until": state.cooldown_until,
        "cooldown_reason": state.cooldown_reason,
        "cooldown_model": state.cooldown_model,
        "disabled_until": state.disabled_until,
        "disabled_reason": state.disabled_reason,
    }


def state_from_dict(data: Mapping[str, Any]) -> ProfileState:
    counts = data.get("failure_counts") or {}
    return ProfileState(
        last_used=float(data.get("last_used") or 0.0),
        last_failure_at=_opt_float(data.get("last_failure_at")),
        error_count=int(data.get("error_count") or 0),
        failure_counts={str(k): int(v) for k, v in counts.items()},
        cooldown_until=_opt_float(data.get("cooldown_until")),
        cooldown_reason=data.get("cooldown_reason"),
        cooldown_model=data.get("cooldown_model"),
        disabled_until=_opt_float(data.get("disabled_until")),
        disabled_reason=data.get("disabled_reason"),
    )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
