"""Profile order and usage state (`order`, `usageStats`) into connection orders and cooldowns.

The store's `order` wins over config `auth.order` per provider, as in OpenClaw; duplicates are
dropped keeping the first, entries naming no imported profile are dropped, both reported.
Only windows still active at the injected clock carry over; timestamps are ms since the epoch
and counters non-negative integers, else the profile's state is refused (its key still imports).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from routing.cooldown import ProfileState
from server.openclaw.items import CooldownPlan, OrderPlan, Plan
from server.openclaw.profiles import Credential, profile_label
from server.openclaw.source import PATCHBAY_PROVIDERS, as_mapping, described, normalize_provider, shown

REASONS: Mapping[str, str] = {
    "rate_limit": "rate_limit",
    "timeout": "timeout",
    "overloaded": "overloaded",
    "server_error": "server_error",
    "billing": "billing",
    "auth": "auth",
    "auth_permanent": "auth",
    "model_not_found": "not_found",
}
"""OpenClaw failure reasons with a Patchbay equivalent; others become `unknown`."""
KNOWN_REASONS = [
    "auth",
    "auth_permanent",
    "format",
    "overloaded",
    "rate_limit",
    "billing",
    "timeout",
    "model_not_found",
    "session_expired",
    "empty_response",
    "no_error_details",
    "unclassified",
    "unknown",
    "server_error",
]
_TIMES = ("lastUsed", "lastFailureAt", "cooldownUntil", "disabledUntil", "blockedUntil")


def read_orders(
    plan: Plan, store: Mapping[str, Any], config: Mapping[str, Any], creds: list[Credential]
) -> None:
    by_raw = {c.raw_id: c for c in creds}
    by_id = {c.profile_id: c for c in creds}
    orders: dict[str, tuple[str, object]] = {}
    for where, source in (
        ("auth.order", as_mapping(config.get("auth")).get("order")),
        ("order", store.get("order")),
    ):
        if source is None:
            continue
        if not isinstance(source, Mapping):
            plan.refuse(where, f"{where} is not a JSON object of provider -> profile ids")
            continue
        for raw_provider, entries in source.items():
            provider = normalize_provider(raw_provider)
            if provider in orders and where == "order":
                plan.skip(
                    f"auth.order.{raw_provider}", f"the store's order for {provider!r} takes precedence"
                )
            orders[provider] = (f"{where}.{raw_provider}", entries)
    for provider, (item, entries) in orders.items():
        pid = PATCHBAY_PROVIDERS.get(provider)
        if pid is None:
            plan.skip(
                item,
                f"{provider!r} is not a Patchbay provider: a custom endpoint has one connection, nothing to order",
            )
            continue
        if not isinstance(entries, list):
            plan.refuse(item, "an order is a list of profile ids")
            continue
        profiles: list[str] = []
        notes: list[str] = []
        for entry in entries:
            cred = by_raw.get(entry) if isinstance(entry, str) else None
            cred = cred or (by_id.get(_normalized(entry)) if isinstance(entry, str) else None)
            if cred is None or cred.provider is not pid:
                notes.append(f"{shown(entry)} dropped: not an imported {pid.value} profile")
            elif cred.profile_id in profiles:
                notes.append(f"{shown(entry)} dropped: listed twice, the first kept")
            else:
                profiles.append(cred.profile_id)
        if not profiles:
            plan.skip(item, "; ".join(notes or ["the order is empty"]), pid.value)
            continue
        plan.orders.append(OrderPlan(item, pid, tuple(profiles), tuple(notes)))


def _normalized(entry: str) -> str:
    provider, _, name = entry.partition(":")
    pid = PATCHBAY_PROVIDERS.get(normalize_provider(provider))
    return f"{pid.value if pid else provider}:{name.strip().lower()}"


def read_cooldowns(plan: Plan, stats: object, creds: list[Credential], now_ms: int) -> None:
    if stats is None:
        return
    if not isinstance(stats, Mapping):
        plan.refuse("usageStats", "usageStats is not a JSON object of profile id -> stats")
        return
    by_raw = {c.raw_id: c for c in creds}
    by_id = {c.profile_id: c for c in creds}
    for raw_id, entry in stats.items():
        item = f"usageStats of {profile_label(raw_id)}"
        cred = by_raw.get(raw_id) or by_id.get(_normalized(raw_id))
        if cred is None:
            plan.skip(item, "its profile is not imported")
            continue
        found = _state(as_mapping(entry) if isinstance(entry, Mapping) else None, now_ms)
        if isinstance(found, str):
            plan.refuse(item, found, cred.profile_id)
        elif found is None:
            plan.skip(item, "no cooldown or disable window is active now", cred.profile_id)
        else:
            state, notes = found
            plan.cooldowns.append(CooldownPlan(item, cred.profile_id, state, notes))


def _state(entry: Mapping[str, Any] | None, now_ms: int) -> tuple[ProfileState, tuple[str, ...]] | str | None:
    if entry is None:
        return "the stats are not a JSON object"
    times: dict[str, float | None] = {}
    for name in _TIMES:
        value = entry.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
            return f"{name} is {described(value)}; expected milliseconds since the epoch as a non-negative number"
        times[name] = None if value is None else float(value) / 1000
    counts: dict[str, int] = {}
    raw_counts = entry.get("failureCounts") or {}
    if not isinstance(raw_counts, Mapping):
        return "failureCounts is not an object of reason -> count"
    notes: list[str] = []
    for reason, n in {"errorCount": entry.get("errorCount", 0), **raw_counts}.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            return f"{'errorCount' if reason == 'errorCount' else f'failureCounts.{reason}'} is {described(n)}; expected a non-negative integer"
        if reason != "errorCount" and n:
            mapped = REASONS.get(reason, "unknown")
            counts[mapped] = counts.get(mapped, 0) + n
    now = now_ms / 1000
    cooldown, disabled, blocked = times["cooldownUntil"], times["disabledUntil"], times["blockedUntil"]
    cooldown = cooldown if cooldown is not None and cooldown > now else None
    disabled = disabled if disabled is not None and disabled > now else None
    disabled_reason = _reason(entry.get("disabledReason"), notes, "disabledReason") if disabled else None
    if blocked is not None and blocked > now and (disabled is None or blocked > disabled):
        disabled, disabled_reason = blocked, "billing"
        notes.append("the active subscription block carried as a billing disable")
    if cooldown is None and disabled is None:
        return None
    model = entry.get("cooldownModel")
    state = ProfileState(
        last_used=times["lastUsed"] or 0.0,
        last_failure_at=times["lastFailureAt"],
        error_count=int(entry.get("errorCount") or 0),
        failure_counts=counts,
        cooldown_until=cooldown,
        cooldown_reason=_reason(entry.get("cooldownReason"), notes, "cooldownReason") if cooldown else None,
        cooldown_model=model if cooldown and isinstance(model, str) and model.strip() else None,
        disabled_until=disabled,
        disabled_reason=disabled_reason if disabled else None,
    )
    return state, tuple(notes)


def _reason(value: object, notes: list[str], where: str) -> str:
    if isinstance(value, str) and value in REASONS:
        return REASONS[value]
    notes.append(f"{where} {described(value, frozenset(KNOWN_REASONS))} recorded as 'unknown'")
    return "unknown"
