"""What the attempt runner counts: attempts by provider and wire protocol, fallbacks, skips and
cooldown transitions (labels from closed sets only; see `foundation.metrics`)."""

from __future__ import annotations

from foundation import metrics
from providers.contract import ErrorClass, preset
from routing.cooldown import ProfileState, block_for
from routing.resolver import PlannedAttempt


def attempt(planned: PlannedAttempt, outcome: str, error_class: ErrorClass | None = None) -> None:
    provider = planned.connection.provider
    metrics.observe_attempt(
        provider.value, preset(provider).protocol.value, outcome, error_class.value if error_class else ""
    )


def fallback(error_class: ErrorClass) -> None:
    metrics.observe_fallback(error_class.value)


def skip(reason: str) -> None:
    metrics.observe_skip(reason)


def blocked(state: ProfileState, planned: PlannedAttempt, error_class: ErrorClass, now: float) -> None:
    """Count a failure that left the profile cooling down or disabled for this model."""
    block = block_for(state, planned.model, now)
    if block is not None:
        metrics.observe_cooldown(block.lane.value, error_class.value)
