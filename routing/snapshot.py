"""Build an org's routing snapshot from its database rows. Pure: rows in, `OrgRouting` out.

The caller loads the rows (org, AI settings, connections, agents, and the platform's
connections) once and rebuilds the snapshot when the org's or the platform's configuration
changes.

Precedence between an org's own connections and the platform's (docs/routing.md#platform-connections):
a ref `provider/model` uses the org's own connections of that provider while at least one of
them is of a billing source the org's tier and feature flags allow (whatever its status: disabling your own key
does not move you onto platform credits); otherwise it uses the platform's connections of that
provider, after the org's skipped ones. A custom endpoint is found by its name, the org's
first. A ref naming a platform connection (`openai:plat/gpt-4o`) always reaches it; a platform
connection with the same profile id as one of the org's (`openai_compatible:lab`) is hidden
from that org, with a warning. Configuration problems never raise here: a
bad ref or an unknown capability is dropped and named in `OrgRouting.warnings`, so one typo
cannot take an org's routing down.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol

from billing.prices import Price, PriceError
from foundation.errors import RequestError
from providers.contract import (
    BillingSource,
    Capability,
    CredentialSource,
    ModelRef,
    ProviderId,
    billing_source_for,
)
from routing.conformance.snapshot import org_gates
from routing.conformance.tables import ConformanceResult
from routing.flags import ALL_ON, source_allowed
from routing.intents import Intent
from routing.model import (
    ALL_BILLING_SOURCES,
    AgentRouting,
    Chain,
    ConnectionStatus,
    ConnectionView,
    DeclaredModel,
    OrgRouting,
)
from routing.rows import AISettingsRecord, ConnectionRecord
from routing.tables import Agent
from routing.voice_settings import VoiceSettings, from_stored


class OrgRow(Protocol):
    """The org columns routing reads (`foundation.orgs.Org` satisfies it; tests pass plain values)."""

    @property
    def id(self) -> str: ...

    @property
    def tier(self) -> str: ...


_PROVIDER_IDS = frozenset(p.value for p in ProviderId)


class BillingPolicy(Protocol):
    """Tier (and the org's BYOK override) -> billing sources it permits: `billing.policy.billing_policy`."""

    def __call__(self, tier: str, *, byok_override: bool = False) -> frozenset[BillingSource]: ...


def allow_all_billing(tier: str, *, byok_override: bool = False) -> frozenset[BillingSource]:
    """Every source, whatever the tier: for tests and tools that do not enforce tiers."""
    return ALL_BILLING_SOURCES


def build_org_routing(
    org: OrgRow,
    settings: AISettingsRecord | None,
    connections: Sequence[ConnectionRecord],
    agents: Sequence[Agent],
    *,
    platform: Sequence[ConnectionRecord] = (),
    billing_policy: BillingPolicy = allow_all_billing,
    explicit_order: Collection[str] = (),
    conformance: Sequence[ConformanceResult] = (),
    flags: frozenset[str] = ALL_ON,
) -> OrgRouting:
    """The org's snapshot. `platform`: the operator's connections (rows without an org).
    `explicit_order` (added to the settings' `profile_order_explicit`) names the providers whose
    profile order the org set by hand (they are tried by `position`); the others rotate by least
    recent use. `conformance`: the stored results of these connections, for the gates. `flags`:
    the feature flags on for this org (routing/flags.py); an own connection whose billing source
    a flag switched off counts as not allowed for the precedence, like one the tier refuses.
    """
    explicit_order = {*explicit_order, *((settings.profile_order_explicit or []) if settings else [])}
    allowed_billing = billing_policy(org.tier, byok_override=bool(settings and settings.byok_enabled))
    warnings: list[str] = []
    own = _by_provider(org.id, connections, warnings)
    theirs = _by_provider(org.id, platform, warnings)
    own_profiles = {v.profile_id for vs in own.values() for v in vs}
    for provider, views in list(theirs.items()):
        kept = [v for v in views if v.profile_id not in own_profiles]
        warnings.extend(
            f"platform connection {v.profile_id} is hidden by the org's connection of the same name"
            for v in views
            if v.profile_id in own_profiles
        )
        theirs[provider] = kept

    by_provider = {p: list(vs) for p, vs in own.items()}
    for provider, views in theirs.items():
        if provider is ProviderId.OPENAI_COMPATIBLE:
            continue  # custom endpoints take precedence by name, below
        if not any(
            v.billing_source in allowed_billing and source_allowed(v.billing_source.value, flags)
            for v in own.get(provider, ())
        ):
            by_provider[provider] = [*own.get(provider, ()), *views]
    custom = {v.name.lower(): v for v in own.get(ProviderId.OPENAI_COMPATIBLE, [])}
    for view in theirs.get(ProviderId.OPENAI_COMPATIBLE, []):
        custom.setdefault(view.name.lower(), view)
    if custom:
        by_provider[ProviderId.OPENAI_COMPATIBLE] = sorted(
            custom.values(), key=lambda v: (v.platform, v.position, v.name)
        )
    for name in custom:
        if name in _PROVIDER_IDS or ":" in name:
            warnings.append(f"custom connection name {name!r} cannot be used as a ref provider part")

    matrix = _chains(settings.routing if settings else None, "org", warnings)
    agent_views = {
        a.name: AgentRouting(
            name=a.name,
            default_model=_ref(a.default_model, f"agent {a.name} default_model", warnings),
            chains=_chains(a.chains, f"agent {a.name}", warnings),
            voice_settings=_voice_settings(a, warnings),
        )
        for a in agents
    }
    allowlist = None
    if settings is not None and settings.allowed_models is not None:
        allowlist = frozenset(r.lower() for r in settings.allowed_models)

    return OrgRouting(
        org_id=org.id,
        tier=org.tier,
        default_model=_ref(settings.default_model if settings else None, "org default_model", warnings),
        allowlist=allowlist,
        matrix=matrix,
        agents=MappingProxyType(agent_views),
        profiles=MappingProxyType({p: tuple(vs) for p, vs in by_provider.items()}),
        custom=MappingProxyType(custom),
        explicit_order=frozenset(p for p in by_provider if p.value in explicit_order),
        platform=MappingProxyType({p: tuple(vs) for p, vs in theirs.items() if vs}),
        allowed_billing=allowed_billing,
        flags=flags,
        gates=org_gates(settings, conformance, warnings),
        warnings=tuple(warnings),
    )


def _voice_settings(agent: Agent, warnings: list[str]) -> VoiceSettings:
    found: list[str] = []
    settings = from_stored(agent.settings, found)
    warnings.extend(f"agent {agent.name}: {problem}" for problem in found)
    return settings


def _by_provider(
    org_id: str, rows: Sequence[ConnectionRecord], warnings: list[str]
) -> dict[ProviderId, list[ConnectionView]]:
    """Views of `rows` by provider, each provider's in (position, name) order."""
    views = [v for c in rows if (v := _connection_view(c, org_id, warnings)) is not None]
    views.sort(key=lambda v: (v.position, v.name))
    out: dict[ProviderId, list[ConnectionView]] = {}
    for view in views:
        out.setdefault(view.provider, []).append(view)
    return out


def _connection_view(row: ConnectionRecord, org_id: str, warnings: list[str]) -> ConnectionView | None:
    """`org_id`: the org whose snapshot this is; a platform connection's cooldowns are that org's."""
    try:
        provider = ProviderId(row.provider)
        source = CredentialSource(row.credential_source)
        status = ConnectionStatus(row.status)
    except ValueError:
        warnings.append(f"connection {row.provider}:{row.name} has an unknown provider, source or status")
        return None
    return ConnectionView(
        connection_id=row.id,
        org_id=org_id,
        provider=provider,
        name=row.name,
        base_url=row.base_url or None,
        status=status,
        position=row.position or 0,
        credential_source=source,
        billing_source=billing_source_for(source),
        declared_models=tuple(_declared(row, warnings)),
        reported_models=frozenset(row.health_models or ()),
        platform=row.org_id is None,
    )


def _declared(row: ConnectionRecord, warnings: list[str]) -> Iterable[DeclaredModel]:
    for entry in row.models or ():
        model_id = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(model_id, str) or not model_id:
            warnings.append(f"connection {row.provider}:{row.name} declares a model without an id")
            continue
        caps: set[Capability] = set()
        for cap in entry.get("capabilities") or [Capability.TEXT.value]:
            try:
                caps.add(Capability(cap))
            except ValueError:
                warnings.append(
                    f"connection {row.provider}:{row.name} model {model_id}: unknown capability {cap!r}"
                )
        yield DeclaredModel(
            id=model_id, capabilities=frozenset(caps), price=_declared_price(row, model_id, entry, warnings)
        )


def _declared_price(
    row: ConnectionRecord, model_id: str, entry: Mapping[str, Any], warnings: list[str]
) -> Price | None:
    raw = entry.get("price")
    if raw is None:
        return None
    try:
        if not isinstance(raw, dict):
            raise PriceError("a price is an object of USD amounts")
        return Price.from_usd(raw)
    except RequestError as exc:
        warnings.append(f"connection {row.provider}:{row.name} model {model_id}: unusable price ({exc})")
        return None


def _ref(raw: str | None, where: str, warnings: list[str]) -> ModelRef | None:
    if not raw:
        return None
    try:
        return ModelRef.parse(raw)
    except ValueError:
        warnings.append(f"{where}: {raw!r} is not a model ref")
        return None


def _chains(raw: Mapping[str, Any] | None, where: str, warnings: list[str]) -> Mapping[Intent, Chain]:
    chains: dict[Intent, Chain] = {}
    for intent_name, refs in (raw or {}).items():
        try:
            intent = Intent(intent_name)
        except ValueError:
            warnings.append(f"{where}: unknown intent {intent_name!r}")
            continue
        if not isinstance(refs, list):
            warnings.append(f"{where} {intent_name}: chain is not a list")
            continue
        chain = [r for raw_ref in refs if (r := _ref(str(raw_ref), f"{where} {intent_name}", warnings))]
        chains[intent] = tuple(chain)
    return MappingProxyType(chains)
