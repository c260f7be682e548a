"""Who must act when every candidate of a request was skipped: the caller or admin, or time.

Each skip family of the trace vocabulary (`skipped:<why>[:<detail>]`, routing/trace.py) has one
rule here. A family the caller or the organisation's admin must fix (a capability the model
lacks, a failed conformance gate, a connection switched off, a model the connection does not
serve) is a `CONFIG` refusal; a billing source the organisation's plan does not allow is `TIER`; a billing source a feature
flag switched off for the organisation (`flag:byok`, `flag:private`) is `CONFIG` (a 400 naming
`feature_disabled`: the request cannot succeed as configured, docs/flags.md);
a cooldown or a timed disable passes on its own and is `TRANSIENT`. The surfaces map the kind
to their wire (server/v1/errors.py: 400, 403, 503), so every wire tells the same story.

Pure: no I/O, no clock; a transient skip carries the seconds left, measured when it was planned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from routing.trace import Outcome, TraceEntry


class SkipKind(StrEnum):
    CONFIG = "config"
    """The caller's request or the organisation's configuration must change."""
    TIER = "tier"
    """The organisation's plan does not allow the billing source."""
    TRANSIENT = "transient"
    """It passes with time: a cooldown or a timed disable."""


@dataclass(frozen=True, slots=True)
class SkipRule:
    kind: SkipKind
    code: str
    """The stable machine-readable code of a refusal led by this family."""
    says: str
    """The plain-words reason, formatted with `{model}` (the target) and `{detail}`."""
    fix: str
    """What to do about it, shown after the reasons."""


SKIP_RULES: Mapping[str, SkipRule] = MappingProxyType(
    {
        "capability": SkipRule(
            SkipKind.CONFIG,
            "model_lacks_capability",
            "{model} lacks the `{detail}` capability this request needs",
            "pick a model that has it, or declare it on the connection "
            "(`patchbay connection update ... --model ID:text,{detail}`)",
        ),
        "gate": SkipRule(
            SkipKind.CONFIG,
            "conformance_gate_failed",
            "{model} has not passed the conformance gate for `{detail}`",
            "route to a model that passed, run `patchbay conformance run`, or turn the org's gates off",
        ),
        "no_connection": SkipRule(
            SkipKind.CONFIG,
            "no_connection",
            "no connection serves {model}",
            "add a connection for its provider (`patchbay connection add`) or change the routing",
        ),
        "status": SkipRule(
            SkipKind.CONFIG,
            "connection_disabled",
            "the connection for {model} is {detail}",
            "enable the connection or give it a new key (`patchbay connection update`)",
        ),
        "model_not_offered": SkipRule(
            SkipKind.CONFIG,
            "model_not_offered",
            "{model} is not among the models its connection declares",
            "declare it (`patchbay connection update ... --model ID`) or change the routing",
        ),
        "no_adapter": SkipRule(
            SkipKind.CONFIG,
            "no_adapter",
            "{model} speaks `{detail}`, which cannot serve this kind of request",
            "route this intent to a model of another provider",
        ),
        "tier": SkipRule(
            SkipKind.TIER,
            "tier_not_allowed",
            "the organisation's plan does not allow `{detail}` connections ({model})",
            "change the plan (`patchbay org update ORG --tier ...`) or route to an allowed connection",
        ),
        "flag": SkipRule(
            SkipKind.CONFIG,
            "feature_disabled",
            "`{detail}` connections are switched off for this organisation by a feature flag ({model})",
            "ask the operator to turn the flag on for the org (`patchbay flags canary ...`), or route to a platform model",
        ),
        "cooldown": SkipRule(
            SkipKind.TRANSIENT,
            "no_available_model",
            "{model} is cooling down after `{detail}`",
            "retry later",
        ),
        "disabled": SkipRule(
            SkipKind.TRANSIENT,
            "no_available_model",
            "{model} is disabled for a while after `{detail}` errors",
            "retry later, or fix the connection's key or account",
        ),
    }
)
_UNKNOWN = SkipRule(SkipKind.TRANSIENT, "no_available_model", "{model} was skipped ({detail})", "retry later")
"""A family this table does not know yet is not blamed on the caller."""


def rule_for(reason: str) -> tuple[SkipRule, str]:
    """The rule of a skip reason (`capability:tools`, `gate:tools`, `status:disabled`) and its detail."""
    family, _, detail = reason.partition(":")
    rule = SKIP_RULES.get(family)
    return (rule, detail) if rule is not None else (_UNKNOWN, reason)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why nothing could be tried, for one error on every wire."""

    kind: SkipKind
    code: str
    message: str
    retry_after: float | None = None
    """Seconds until the soonest transient skip ends, when every such skip knows it."""


_MAX_LISTED = 4


def refusal(entries: Iterable[TraceEntry]) -> Refusal:
    """The refusal for a trace whose candidates were all skipped.

    Any transient skip makes the whole answer transient (waiting may help). Otherwise the
    request is refused for configuration, `TIER` only when every skip is the plan's.
    """
    skips = [(e, *rule_for(e.reason)) for e in entries if e.outcome is Outcome.SKIPPED]
    if not skips:
        return Refusal(SkipKind.TRANSIENT, "no_available_model", "no candidate to try for this request")
    transient = [(e, r, d) for e, r, d in skips if r.kind is SkipKind.TRANSIENT]
    if transient:
        waits = [e.retry_after for e, _, _ in transient]
        retry_after = min(w for w in waits if w is not None) if all(w is not None for w in waits) else None
        return Refusal(
            SkipKind.TRANSIENT,
            "no_available_model",
            _message("no model is available for this request right now", transient),
            retry_after,
        )
    kind = SkipKind.TIER if all(r.kind is SkipKind.TIER for _, r, _ in skips) else SkipKind.CONFIG
    lead = next(r for _, r, _ in skips if r.kind is kind)
    return Refusal(kind, lead.code, _message("no candidate can serve this request", skips))


def _message(head: str, skips: list[tuple[TraceEntry, SkipRule, str]]) -> str:
    reasons = list(dict.fromkeys(r.says.format(model=e.target, detail=d) for e, r, d in skips))
    fixes = list(dict.fromkeys(r.fix.format(detail=d) for _, r, d in skips))
    listed = "; ".join(reasons[:_MAX_LISTED])
    more = f" (and {len(reasons) - _MAX_LISTED} more)" if len(reasons) > _MAX_LISTED else ""
    return f"{head}: {listed}{more}. To fix: {'; '.join(fixes[:2])}"
