"""The in-memory routing snapshot: everything the resolver and executor read on the hot path.

A snapshot is built once per org from the database (`routing.snapshot`) and replaced when the
org's configuration changes; resolving a request never touches the database. All types are
frozen so a snapshot can be shared between concurrent requests without locks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from billing.prices import Price
from providers.contract import BillingSource, Capability, CredentialSource, ModelRef, ProviderId
from routing.conformance.gates import GATES_OFF, OrgGates
from routing.flags import ALL_ON
from routing.intents import Intent
from routing.voice_settings import VoiceSettings

ALL_BILLING_SOURCES: frozenset[BillingSource] = frozenset(BillingSource)


class ConnectionStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class DeclaredModel:
    """A model a private endpoint declares, with the capabilities its operator vouches for and,
    optionally, its price (which wins over the catalog's for this connection)."""

    id: str
    capabilities: frozenset[Capability]
    price: Price | None = None


@dataclass(frozen=True, slots=True)
class ConnectionView:
    """One auth profile (`provider:name`) as routing sees it: no secret, only a handle to one."""

    connection_id: str
    org_id: str
    provider: ProviderId
    name: str
    base_url: str | None
    status: ConnectionStatus
    position: int
    credential_source: CredentialSource
    billing_source: BillingSource
    declared_models: tuple[DeclaredModel, ...] = ()
    reported_models: frozenset[str] = frozenset()
    """Model ids the connection's own model list returned at its last verification."""
    platform: bool = False
    """An operator-owned connection, seen here through the org's snapshot (`org_id` is the org's)."""
    profile_id: str = field(init=False, compare=False)
    """`provider:name`, computed once: the hot path reads it for every candidate."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "profile_id", f"{self.provider.value}:{self.name}")

    @property
    def cools_down(self) -> bool:
        """False for the built-in engines: the floor of every speech chain is never skipped."""
        return self.provider is not ProviderId.INTERNAL

    @property
    def is_custom(self) -> bool:
        return self.provider is ProviderId.OPENAI_COMPATIBLE

    def declared(self, model: str) -> DeclaredModel | None:
        for declared in self.declared_models:
            if declared.id == model:
                return declared
        return None


Chain = tuple[ModelRef, ...]


@dataclass(frozen=True, slots=True)
class AgentRouting:
    name: str
    default_model: ModelRef | None = None
    chains: Mapping[Intent, Chain] = field(default_factory=lambda: MappingProxyType({}))
    voice_settings: VoiceSettings = VoiceSettings()
    """What the agent's voice sessions start with, read when one opens (no database round-trip)."""


@dataclass(frozen=True, slots=True)
class OrgRouting:
    """An org's routing configuration, indexed for resolution.

    `profiles` maps a provider to its connections sorted by (position, name); `custom` maps a
    custom endpoint's connection name (the provider part of its model refs) to the connection.
    `explicit_order` holds the providers whose profiles the org ordered by hand; the others
    rotate by least recent use. `platform` maps a provider to every platform connection the org
    sees, for refs that name one explicitly (`openai:plat/gpt-4o`); `profiles` and `custom`
    already hold the platform connections an unnamed ref may use (docs/routing.md#platform-connections).
    """

    org_id: str
    tier: str
    default_model: ModelRef | None
    allowlist: frozenset[str] | None
    matrix: Mapping[Intent, Chain]
    agents: Mapping[str, AgentRouting]
    profiles: Mapping[ProviderId, tuple[ConnectionView, ...]]
    custom: Mapping[str, ConnectionView]
    explicit_order: frozenset[ProviderId] = frozenset()
    platform: Mapping[ProviderId, tuple[ConnectionView, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    allowed_billing: frozenset[BillingSource] = ALL_BILLING_SOURCES
    """Billing sources the org's tier (and its BYOK override) permits; candidates billed elsewhere
    are skipped with `skipped:tier:<source>`."""
    gates: OrgGates = GATES_OFF
    """Conformance gates: whether they are on, the thresholds and the stored results
    (routing/conformance/gates.py); candidates they stop are skipped with `skipped:gate:<capability>`."""
    flags: frozenset[str] = ALL_ON
    """The feature flags that are on for this org (routing/flags.py), evaluated when the snapshot
    is built; a BYOK or private candidate whose flag is off is skipped with `skipped:flag:<source>`."""
    warnings: tuple[str, ...] = ()
    """Configuration problems found while building (e.g. an unparsable ref), for the admin UI."""

    def flag(self, name: str) -> bool:
        return name in self.flags

    def all_connections(self) -> tuple[ConnectionView, ...]:
        return tuple(c for conns in self.profiles.values() for c in conns)
