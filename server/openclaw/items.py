"""The typed plan an import carries out, and the per-item outcomes it reports.

A `Plan` is what the OpenClaw files ask for, decided without looking at the database: the
connections to hold, the profile orders, the agent chains and the cooldown windows to carry
over, plus every input item that cannot be imported and why. Keys travel as `Secret`s, which
never print themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from providers.contract import CredentialKind, ProviderId
from providers.vault.secret import Secret
from routing.cooldown import ProfileState


class Status(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    """Deliberately left out (not allowlisted, nothing to carry over, not a thing Patchbay imports)."""
    REFUSED = "refused"
    """Could not be imported as given; the reason says how to fix it. Makes the exit code 4."""


@dataclass(frozen=True, slots=True)
class ConnectionPlan:
    item: str
    """The input it comes from, e.g. `profile openai:default` or `models.providers.acme-llm`."""
    provider: ProviderId
    name: str
    key: Secret | None
    kind: CredentialKind
    base_url: str | None = None
    models: tuple[dict[str, Any], ...] | None = None
    """Declared models to hold; None leaves the connection's models alone."""
    notes: tuple[str, ...] = ()

    @property
    def profile_id(self) -> str:
        return f"{self.provider.value}:{self.name}"


@dataclass(frozen=True, slots=True)
class OrderPlan:
    item: str
    provider: ProviderId
    profiles: tuple[str, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ChainPlan:
    item: str
    agent: str
    default_model: str
    chains: dict[str, list[str]]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CooldownPlan:
    item: str
    profile_id: str
    """The Patchbay profile id the window applies to."""
    state: ProfileState
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Outcome:
    """One line of the report."""

    item: str
    status: Status
    target: str | None = None
    actions: tuple[str, ...] = ()
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "status": self.status.value,
            "target": self.target,
            "actions": list(self.actions),
            "reason": self.reason,
        }

    def as_text(self) -> str:
        target = f" -> {self.target}" if self.target else ""
        detail = "; ".join(self.actions)
        if self.reason:
            detail = f"{detail}; {self.reason}" if detail else self.reason
        return f"{self.item}{target}: {self.status.value}" + (f" ({detail})" if detail else "")


_SECTIONS = (("profile", "models.providers"), ("order", "auth.order"), ("agents",), ("usageStats",))


def in_report_order(outcomes: list[Outcome]) -> list[Outcome]:
    """Keys and endpoints first, then orders, agents, cooldowns, and the rest; stable within each."""

    def section(outcome: Outcome) -> int:
        return next(
            (i for i, prefixes in enumerate(_SECTIONS) if outcome.item.startswith(prefixes)), len(_SECTIONS)
        )

    return sorted(outcomes, key=section)


@dataclass
class Plan:
    connections: list[ConnectionPlan] = field(default_factory=list)
    orders: list[OrderPlan] = field(default_factory=list)
    chains: list[ChainPlan] = field(default_factory=list)
    cooldowns: list[CooldownPlan] = field(default_factory=list)
    left_out: list[Outcome] = field(default_factory=list)
    """Items decided without the database: skipped or refused."""

    def refuse(self, item: str, reason: str, target: str | None = None) -> None:
        self.left_out.append(Outcome(item, Status.REFUSED, target=target, reason=reason))

    def skip(self, item: str, reason: str, target: str | None = None) -> None:
        self.left_out.append(Outcome(item, Status.SKIPPED, target=target, reason=reason))
