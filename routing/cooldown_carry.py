"""Laying auth-profile state imported from another system (OpenClaw) over ours. Pure."""

from __future__ import annotations

from dataclasses import replace

from routing.cooldown import ProfileState


def carry_over(state: ProfileState, imported: ProfileState) -> ProfileState:
    """`state` with another system's windows and counters laid over it (an import): each window
    keeps the later end, counters the larger value. Applying it twice changes nothing more."""

    def later(a: float | None, b: float | None) -> float | None:
        return b if a is None or (b is not None and b > a) else a

    cooldown = state
    if (
        imported.cooldown_until is not None
        and later(state.cooldown_until, imported.cooldown_until) != state.cooldown_until
    ):
        cooldown = replace(
            state,
            cooldown_until=imported.cooldown_until,
            cooldown_reason=imported.cooldown_reason,
            cooldown_model=imported.cooldown_model,
        )
    disabled = cooldown
    if (
        imported.disabled_until is not None
        and later(state.disabled_until, imported.disabled_until) != state.disabled_until
    ):
        disabled = replace(
            cooldown, disabled_until=imported.disabled_until, disabled_reason=imported.disabled_reason
        )
    counts = dict(state.failure_counts)
    for reason, n in imported.failure_counts.items():
        counts[reason] = max(counts.get(reason, 0), n)
    return replace(
        disabled,
        last_used=max(state.last_used, imported.last_used),
        last_failure_at=later(state.last_failure_at, imported.last_failure_at),
        error_count=max(state.error_count, imported.error_count),
        failure_counts=counts,
    )
