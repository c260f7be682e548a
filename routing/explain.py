"""Why each model of a chain can or cannot be used right now, in plain words.

A pure function of what a request would read: the org's snapshot, the catalog (through the
resolver), the candidate profiles' states, the time and the tier table. It plans the chain
exactly as a request does (`Resolver.plan`) and reads the skips back, so every reason is the
resolver's own vocabulary (`skipped:<why>[:<detail>]`, docs/routing.md#reasons-vocabulary).
`routing.reasons` only adds the words; a reason added to the resolver later still shows, with its
code as its text, until words are written for it here.

The admin API's routing preview, `patchbay agent explain` and the AI settings page's chain
editor all answer from here (`server/explain.py` does the reading).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from billing.policy import allowed
from billing.tiers import TierTable, default_table
from foundation.tiers import Tier
from providers.contract import BillingSource, Capability, ModelRef
from routing.catalog import Catalog
from routing.cooldown import FRESH, ProfileState, block_for
from routing.errors import ModelNotAllowedError, NoRouteError
from routing.intents import Intent, required_capabilities
from routing.model import OrgRouting
from routing.reasons import SOURCE_WORDS, TRANSIENT, Context, reason_text
from routing.resolver import ChainChoice, PlannedAttempt, Resolver, RouteRequest
from routing.trace import TraceEntry

EDITED = "edited"
"""The `source` of a chain the caller passed in (one being edited), rather than one resolved."""


class RefState(StrEnum):
    USABLE = "usable"
    """At least one of its profiles would be tried now."""
    WAITING = "waiting"
    """None now, but one will be once a cooldown or disable window ends."""
    UNUSABLE = "unusable"
    """Nothing serves it until the configuration, the connection or the tier changes."""


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    """The resolver's trace label: `skipped:capability:vision`, `skipped:tier:private`, ..."""
    text: str
    profile: str | None = None
    until: float | None = None
    """Epoch seconds when a cooldown or disable ends."""
    allowed_on_tier: str | None = None
    """For `skipped:tier:*`: the first tier that allows the billing source (None: none does)."""

    @property
    def why(self) -> str:
        return self.code.split(":")[1] if self.code.count(":") >= 1 else self.code

    @property
    def transient(self) -> bool:
        return self.why in TRANSIENT


@dataclass(frozen=True, slots=True)
class RefExplanation:
    ref: str
    state: RefState
    profiles: tuple[str, ...] = ()
    """Profiles that would be tried now, in order."""
    reasons: tuple[Reason, ...] = ()

    @property
    def text(self) -> str:
        if self.state is RefState.USABLE:
            return f"usable through {', '.join(self.profiles)}"
        return "; ".join(r.text for r in self.reasons) or "cannot be used"


@dataclass(frozen=True, slots=True)
class Explanation:
    intent: Intent
    source: str | None
    """Where the chain came from (`org:chat`, `agent:NAME`, `org:default`, `edited`); None: none."""
    needs: frozenset[Capability]
    refs: tuple[RefExplanation, ...] = ()
    error: str | None = None
    """Why no chain could be chosen (no chain configured, unknown agent)."""

    @property
    def first(self) -> str | None:
        """The model ref a request would try first, if any."""
        return next((r.ref for r in self.refs if r.state is RefState.USABLE), None)


def first_tier_allowing(source: BillingSource, table: TierTable) -> str | None:
    """The cheapest tier (in `Tier` order) whose row permits `source`."""
    return next((tier.value for tier in Tier if allowed(table[tier], source) is None), None)


def _reason(
    entry: TraceEntry,
    ref: ModelRef,
    org: OrgRouting,
    intent: Intent,
    states: Mapping[str, ProfileState],
    now: float,
    table: TierTable,
) -> Reason:
    why, _, detail = entry.reason.partition(":")
    until = None
    if why in TRANSIENT and entry.profile_id is not None:
        block = block_for(states.get(entry.profile_id, FRESH), ref.model, now)
        until = block.until if block is not None else None
    tier_ok = (
        first_tier_allowing(BillingSource(detail), table)
        if why == "tier" and detail in SOURCE_WORDS
        else None
    )
    ctx = Context(ref, entry.profile_id, intent, org.tier, until, tier_ok)
    return Reason(entry.label, reason_text(entry.label, ctx), entry.profile_id, until, tier_ok)


def explain_chain(
    resolver: Resolver,
    org: OrgRouting,
    intent: Intent,
    chain: Sequence[str],
    states: Mapping[str, ProfileState],
    now: float,
    *,
    table: TierTable | None = None,
) -> Explanation:
    """Explain a chain as given (one being edited): every ref, in order, duplicates once."""
    refs: list[ModelRef | str] = []
    for raw in dict.fromkeys(r.strip() for r in chain if r.strip()):
        try:
            refs.append(ModelRef.parse(raw))
        except ValueError:
            refs.append(raw)
    parsed = tuple(r for r in refs if isinstance(r, ModelRef))
    done = _explain(resolver, org, intent, ChainChoice(parsed, EDITED, strict=False), states, now, table)
    by_ref = {r.ref: r for r in done.refs}
    out = [
        by_ref[str(r)]
        if isinstance(r, ModelRef)
        else RefExplanation(
            r,
            RefState.UNUSABLE,
            reasons=(Reason("invalid_ref", f"{r!r} is not a model ref: write provider/model"),),
        )
        for r in refs
    ]
    return Explanation(intent=intent, source=EDITED, needs=done.needs, refs=tuple(out))


def explain_route(
    resolver: Resolver,
    org: OrgRouting,
    intent: Intent,
    agent: str | None,
    states: Mapping[str, ProfileState],
    now: float,
    *,
    table: TierTable | None = None,
) -> Explanation:
    """Explain the chain a request for `intent` (with a key bound to `agent`) would follow."""
    try:
        choice = resolver.select(org, RouteRequest(intent=intent, agent=agent))
    except (NoRouteError, ModelNotAllowedError) as exc:
        return Explanation(intent=intent, source=None, needs=required_capabilities(intent), error=str(exc))
    return _explain(resolver, org, intent, choice, states, now, table)


def reachable(catalog: Catalog, org: OrgRouting) -> list[str]:
    """Model refs the org's connections can be asked for (its own, and the platform's an unnamed
    ref reaches), whatever their state: the editor's list to add from."""
    refs: dict[str, None] = {}
    for conns in org.profiles.values():
        for conn in conns:
            if not conn.is_custom:
                refs.update(
                    (f"{conn.provider.value}/{m.id}", None) for m in catalog.models_for_connection(conn)
                )
    for name, conn in org.custom.items():
        refs.update((f"{name}/{m.id}", None) for m in catalog.models_for_connection(conn))
    return sorted(refs)


def _explain(
    resolver: Resolver,
    org: OrgRouting,
    intent: Intent,
    choice: ChainChoice,
    states: Mapping[str, ProfileState],
    now: float,
    table: TierTable | None,
) -> Explanation:
    rows = table if table is not None else default_table()
    plan = resolver.plan(org, RouteRequest(intent=intent), states, now, choice)
    usable: dict[str, list[str]] = {str(r): [] for r in choice.chain}
    reasons: dict[str, list[Reason]] = {str(r): [] for r in choice.chain}
    for step, ref in enumerate(choice.chain):
        for item in plan.items:
            if isinstance(item, PlannedAttempt):
                if item.step == step:
                    usable[str(ref)].append(item.connection.profile_id)
            elif item.ref == str(ref):
                reasons[str(ref)].append(_reason(item, ref, org, intent, states, now, rows))
    refs = tuple(_ref(str(r), usable[str(r)], reasons[str(r)]) for r in choice.chain)
    return Explanation(intent=intent, source=choice.source, needs=required_capabilities(intent), refs=refs)


def _ref(ref: str, profiles: list[str], reasons: list[Reason]) -> RefExplanation:
    if profiles:
        state = RefState.USABLE
    elif any(r.transient for r in reasons):
        state = RefState.WAITING
    else:
        state = RefState.UNUSABLE
    return RefExplanation(ref, state, tuple(profiles), tuple(reasons))
