"""Turn (org, agent, intent, requested model, needs) into an ordered attempt plan.

Resolution is pure and synchronous: it reads the org's snapshot, the catalog and the
profile states the caller fetched in one batch, and returns every candidate in the order
decided, either as an attempt to make or as a skip with a deterministic reason.

Candidates are filtered, in this order, by connection status, feature flag (`skipped:flag:byok|private`), tier (`skipped:tier:*`), what the
connection offers, capability, conformance gates (`skipped:gate:<capability>`) and cooldown.

Where the chain comes from, first match wins:
1. `agent:NAME` as the model: that agent's chain for the intent.
2. Any other model the caller names is pinned, hence strict: only that model is tried
   (auth profiles of its provider still rotate), its failure is reported, never masked by
   another model. It must be on the org's allowlist when there is one.
3. The agent bound to the caller's key: its chain for the intent, else its default model
   followed by the org's chain.
4. The org's matrix for the intent (text intents fall back to `chat`), else its default model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from providers.contract import BillingSource, Capability, ModelRef, ProviderId
from routing.catalog import Catalog, ModelInfo
from routing.cooldown import Block, ProfileState, order_profiles
from routing.errors import ModelNotAllowedError, NoRouteError
from routing.flags import source_allowed
from routing.intents import FALLBACK_INTENT, INTENT_CAPABILITIES, Intent, required_capabilities
from routing.model import Chain, ConnectionStatus, ConnectionView, OrgRouting
from routing.trace import Outcome, TraceEntry

_UNPINNED = frozenset({"", "default", "auto"})
_PROVIDER_IDS: dict[str, ProviderId] = {p.value: p for p in ProviderId}
"""By value: a lookup here costs a fraction of `ProviderId(value)` (planned on every request)."""


@dataclass(frozen=True, slots=True)
class RouteRequest:
    intent: Intent = Intent.CHAT
    model: str | None = None
    """What the caller asked for: None/`default`/`auto`, `agent:NAME`, an alias, a bare model id,
    `provider/model`, `<custom connection>/model` or `provider:name/model` (one profile)."""
    agent: str | None = None
    """The agent bound to the caller's API key, if any."""
    needs: frozenset[Capability] = frozenset()


@dataclass(frozen=True, slots=True)
class ChainChoice:
    chain: Chain
    source: str
    strict: bool


@dataclass(frozen=True, slots=True)
class PlannedAttempt:
    ref: ModelRef
    connection: ConnectionView
    info: ModelInfo
    step: int
    """Index of the ref in the chain; attempts with the same step are profiles of one model."""

    @property
    def model(self) -> str:
        return self.ref.model

    @property
    def billing_source(self) -> BillingSource:
        return self.connection.billing_source


PlanItem = PlannedAttempt | TraceEntry


@dataclass(frozen=True, slots=True)
class Plan:
    intent: Intent
    source: str
    strict: bool
    items: tuple[PlanItem, ...] = field(default_factory=tuple)

    @property
    def attempts(self) -> tuple[PlannedAttempt, ...]:
        return tuple(i for i in self.items if isinstance(i, PlannedAttempt))

    @property
    def skipped(self) -> tuple[TraceEntry, ...]:
        return tuple(i for i in self.items if isinstance(i, TraceEntry))


def _skip(ref: ModelRef, conn: ConnectionView | None, reason: str) -> TraceEntry:
    return TraceEntry(
        ref=str(ref),
        profile_id=conn.profile_id if conn else None,
        outcome=Outcome.SKIPPED,
        reason=reason,
        billing_source=conn.billing_source if conn else None,
    )


class Resolver:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def select(self, org: OrgRouting, request: RouteRequest) -> ChainChoice:
        """The chain to follow; raises `NoRouteError` or `ModelNotAllowedError`."""
        requested = (request.model or "").strip()
        if requested.startswith("agent:"):
            return self._agent_chain(org, requested[len("agent:") :], request.intent, explicit=True)
        if requested.lower() not in _UNPINNED:
            ref = self._pinned_ref(org, requested)
            if org.allowlist is not None and not _allowed(org.allowlist, ref, requested):
                raise ModelNotAllowedError(requested)
            if not self._connections(org, ref)[0]:
                raise NoRouteError(
                    f"no connection serves {ref.provider!r}; add one (`patchbay connection add --provider "
                    f"{ref.provider.partition(':')[0]}`) or name a model of a connected provider"
                )
            return ChainChoice(chain=(ref,), source="pinned", strict=True)
        if request.agent:
            return self._agent_chain(org, request.agent, request.intent, explicit=False)
        return self._org_chain(org, request.intent)

    def _agent_chain(self, org: OrgRouting, name: str, intent: Intent, *, explicit: bool) -> ChainChoice:
        agent = org.agents.get(name)
        if agent is None:
            if explicit:
                raise NoRouteError(f"agent {name!r} does not exist")
            return self._org_chain(org, intent)
        _, chain = _lookup(agent.chains, intent)
        if chain:
            return ChainChoice(chain=chain, source=f"agent:{name}", strict=False)
        if agent.default_model is not None and Capability.TEXT in INTENT_CAPABILITIES[intent]:
            rest: Chain = ()
            with contextlib.suppress(NoRouteError):
                rest = self._org_chain(org, intent).chain
            return ChainChoice(
                chain=_dedupe((agent.default_model, *rest)), source=f"agent:{name}", strict=False
            )
        return self._org_chain(org, intent)

    def _org_chain(self, org: OrgRouting, intent: Intent) -> ChainChoice:
        used, chain = _lookup(org.matrix, intent)
        if chain:
            return ChainChoice(chain=chain, source=f"org:{used.value}", strict=False)
        if org.default_model is not None and Capability.TEXT in INTENT_CAPABILITIES[intent]:
            return ChainChoice(chain=(org.default_model,), source="org:default", strict=False)
        raise NoRouteError(f"no model is configured for {intent.value}")

    def _pinned_ref(self, org: OrgRouting, requested: str) -> ModelRef:
        if "/" in requested:
            try:
                return ModelRef.parse(requested)
            except ValueError as exc:
                raise NoRouteError(str(exc)) from None
        alias = self._catalog.alias(requested)
        if alias is not None:
            return alias
        for provider in self._catalog.providers_for(requested):
            if org.profiles.get(provider):
                return ModelRef(provider=provider.value, model=requested)
        for name, conn in org.custom.items():
            if conn.declared(requested) is not None:
                return ModelRef(provider=name, model=requested)
        known_by = [p.value for p in self._catalog.providers_for(requested)]
        if known_by:
            raise NoRouteError(
                f"model {requested!r} is served by {' or '.join(known_by)}, which this organisation has not "
                f"connected; add a connection (`patchbay connection add --provider {known_by[0]}`) or name "
                "another model"
            )
        raise NoRouteError(f"model {requested!r} is unknown; use provider/model")

    def profiles_for(self, org: OrgRouting, chain: Chain) -> list[str]:
        """Profile ids the chain may touch, for one batched state read before `plan`."""
        seen: dict[str, None] = {}
        for ref in chain:
            for conn in self._connections(org, ref)[0]:
                seen.setdefault(conn.profile_id)
        return list(seen)

    def offers(self, org: OrgRouting, chain: Chain) -> list[tuple[BillingSource, ModelInfo]]:
        """What the chain may be served by, for billing's hold: the billing source and model of every
        active connection the tier allows that offers the ref's model (no states, no needs)."""
        found: list[tuple[BillingSource, ModelInfo]] = []
        for ref in chain:
            for conn in self._connections(org, ref)[0]:
                if (
                    conn.status is not ConnectionStatus.ACTIVE
                    or conn.billing_source not in org.allowed_billing
                ):
                    continue
                info = self._catalog.model_for(conn, ref.model)
                if info is not None:
                    found.append((conn.billing_source, info))
        return found

    def _connections(self, org: OrgRouting, ref: ModelRef) -> tuple[tuple[ConnectionView, ...], bool]:
        """The profiles a ref addresses and whether their order is explicit."""
        provider = ref.provider
        if provider in _PROVIDER_IDS:
            pid = _PROVIDER_IDS[provider]
            return org.profiles.get(pid, ()), pid in org.explicit_order
        if ":" in provider:
            prov, _, name = provider.partition(":")
            if prov in _PROVIDER_IDS:
                pid = _PROVIDER_IDS[prov]
                pinned = [c for c in org.profiles.get(pid, ()) if c.name.lower() == name]
                # Naming a platform connection reaches it even where the org's own connections win.
                pinned = pinned or [c for c in org.platform.get(pid, ()) if c.name.lower() == name]
            else:
                pinned = [c for c in (org.custom.get(prov),) if c is not None and c.name.lower() == name]
            return tuple(pinned), True
        conn = org.custom.get(provider)
        return ((conn,), True) if conn is not None else ((), True)

    def plan(
        self,
        org: OrgRouting,
        request: RouteRequest,
        states: Mapping[str, ProfileState],
        now: float,
        choice: ChainChoice | None = None,
    ) -> Plan:
        choice = choice or self.select(org, request)
        needs = required_capabilities(request.intent, request.needs)
        items: list[PlanItem] = []
        for step, ref in enumerate(choice.chain):
            conns, explicit = self._connections(org, ref)
            if not conns:
                items.append(_skip(ref, None, "no_connection"))
                continue
            active = [c for c in conns if c.status is ConnectionStatus.ACTIVE]
            items.extend(
                _skip(ref, c, f"status:{c.status.value}")
                for c in conns
                if c.status is not ConnectionStatus.ACTIVE
            )
            for conn, block in order_profiles(active, states, ref.model, now, explicit=explicit):
                items.append(self._candidate(org, ref, conn, needs, step, block, now))
        return Plan(intent=request.intent, source=choice.source, strict=choice.strict, items=tuple(items))

    def _candidate(
        self,
        org: OrgRouting,
        ref: ModelRef,
        conn: ConnectionView,
        needs: frozenset[Capability],
        step: int,
        block: Block | None,
        now: float,
    ) -> PlanItem:
        source = conn.billing_source.value
        if not source_allowed(source, org.flags):
            return _skip(ref, conn, f"flag:{source}")
        if conn.billing_source not in org.allowed_billing:
            return _skip(ref, conn, f"tier:{source}")
        info = self._catalog.model_for(conn, ref.model)
        if info is None:
            return _skip(ref, conn, "model_not_offered")
        missing = needs - info.capabilities
        if missing:
            return _skip(ref, conn, f"capability:{min(missing).value}")
        gated = org.gates.blocked(conn.connection_id, conn.profile_id, ref.model, needs)
        if gated is not None:
            return _skip(ref, conn, f"gate:{gated.value}")
        if block is not None:
            return replace(_skip(ref, conn, block.label), retry_after=max(0.0, block.until - now))
        return PlannedAttempt(ref=ref, connection=conn, info=info, step=step)


def _allowed(allowlist: frozenset[str], ref: ModelRef, requested: str) -> bool:
    """Allowlists name models, not keys: `openai:second/gpt-4o` is allowed when `openai/gpt-4o` is."""
    provider = ref.provider.partition(":")[0]
    return bool({f"{provider}/{ref.model}".lower(), str(ref).lower(), requested.lower()} & allowlist)


def _lookup(chains: Mapping[Intent, Chain], intent: Intent) -> tuple[Intent, Chain]:
    """The chain for `intent`, or for its fallback intent, and which intent it was."""
    chain = chains.get(intent)
    if not chain and intent in FALLBACK_INTENT:
        intent = FALLBACK_INTENT[intent]
        chain = chains.get(intent)
    return intent, _dedupe(chain or ())


def _dedupe(chain: Chain) -> Chain:
    return tuple(dict.fromkeys(chain))
