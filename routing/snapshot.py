"""Build an org's routing snapshot from its database rows. Pure: rows in, `OrgRouting` out.

The caller loads the rows (org, AI settings, connections, agents) once and rebuilds the
snapshot when the org's configuration changes. Configuration problems never raise here: a
bad ref or an unknown capability is dropped and named in `OrgRouting.warnings`, so one typo
cannot take an org's routing down.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
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
from routing.tables import Agent, Connection, OrgAISettings
from routing.voice_settings import VoiceSettings, from_stored


class OrgRow(Protocol):
    """The org columns routing reads (`foundation.orgs.Org` satisfies it; tests pass plain values)."""

    @property
    def id(self) -> str: ...

    @property
    def tier(self) -> str: ...


_PROVIDER_IDS = frozenset(p.value for p in ProviderId)

BillingPolicy = Callable[[str], frozenset[BillingSource]]
"""Tier -> billing sources it permits. The billing package supplies the real one."""


def allow_all_billing(tier: str) -> frozenset[BillingSource]:
    return ALL_BILLING_SOURCES


def build_org_routing(
    org: OrgRow,
    settings: OrgAISettings | None,
    connections: Sequence[Connection],
    agents: Sequence[Agent],
    *,
    billing_policy: BillingPolicy = allow_all_billing,
    explicit_order: Collection[str] = (),
) -> OrgRouting:
    """The org's snapshot. `explicit_order` (added to the settings' `profile_order_explicit`)
    names the providers whose profile order the org set by hand (they are tried by
    `position`); the others rotate by least recent use.
    """
    explicit_order = {*explicit_order, *((settings.profile_order_explicit or []) if settings else [])}
    warnings: list[str] = []
    views = [v for c in connections if (v := _connection_view(c, warnings)) is not None]
    views.sort(key=lambda v: (v.position, v.name))

    by_provider: dict[ProviderId, list[ConnectionView]] = {}
    for view in views:
        by_provider.setdefault(view.provider, []).append(view)
    custom = {v.name.lower(): v for v in by_provider.get(ProviderId.OPENAI_COMPATIBLE, [])}
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
        allowed_billing=billing_policy(org.tier),
        warnings=tuple(warnings),
    )


def _voice_settings(agent: Agent, warnings: list[str]) -> VoiceSettings:
    found: list[str] = []
    settings = from_stored(agent.settings, found)
    warnings.extend(f"agent {agent.name}: {problem}" for problem in found)
    return settings


def _connection_view(row: Connection, warnings: list[str]) -> ConnectionView | None:
    try:
        provider = ProviderId(row.provider)
        source = CredentialSource(row.credential_source)
        status = ConnectionStatus(row.status)
    except ValueError:
        warnings.append(f"connection {row.provider}:{row.name} has an unknown provider, source or status")
        return None
    return ConnectionView(
        connection_id=row.id,
        org_id=row.org_id,
        provider=provider,
        name=row.name,
        base_url=row.base_url or None,
        status=status,
        position=row.position or 0,
        credential_source=source,
        billing_source=billing_source_for(source),
        declared_models=tuple(_declared(row, warnings)),
        reported_models=frozenset(row.health_models or ()),
    )


def _declared(row: Connection, warnings: list[str]) -> Iterable[DeclaredModel]:
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
        yield DeclaredModel(id=model_id, capabilities=frozenset(caps), price=_declared_price(row, model_id, entry, warnings))


def _declared_price(row: Connection, model_id: str, entry: Mapping[str, Any], warnings: list[str]) -> Price | None:
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
