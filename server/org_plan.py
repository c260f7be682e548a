"""An org's plan: its tier and its BYOK override, the operation the CLI and the admin API both call.

`patchbay org update ORG --tier T --byok-override on|off` and `PATCH /admin/v1/orgs/{org}` with
`{"tier": ..., "byok_override": ...}` land here. Who may call it is `server.access.policy`'s
business (the operator only: an org changes its tier through Stripe checkout,
`server.payments`). A change rewrites two values and nothing else: a downgrade deletes no
connection, provider or private endpoint; the resolver skips what the new tier does not allow
(`skipped:tier:byok`, `skipped:tier:private`) and an upgrade brings it back. Each change writes
an audit event and bumps the org's config version in the same transaction, so every replica
rebuilds its snapshot within its config poll; the API also drops this process's copy at once
(`Services.config_changed`). See docs/billing.md#changing-an-orgs-tier.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from foundation.audit import AuditEvent
from foundation.errors import RequestError
from foundation.orgs import Org
from foundation.tiers import Tier
from routing.config_versions import bump
from routing.tables import OrgAISettings
from server.accounts import get_org

TIER_NAMES = tuple(t.value for t in Tier)
_ON, _OFF = frozenset({"on", "true", "yes", "1"}), frozenset({"off", "false", "no", "0"})


class UnknownTierError(RequestError):
    code = "unknown_tier"


def parse_tier(value: str) -> Tier:
    """`"pro"` -> `Tier.PRO`; anything else is refused with the list of tiers."""
    try:
        return Tier(value.strip().lower())
    except ValueError:
        raise UnknownTierError(
            f"no tier {value!r}; the tiers are {', '.join(TIER_NAMES)} (docs/billing.md#tiers-and-what-they-charge)",
            param="tier",
        ) from None


def parse_switch(value: str, *, param: str) -> bool:
    """`on`/`off` (also true/false, yes/no, 1/0) -> bool."""
    word = value.strip().lower()
    if word in _ON or word in _OFF:
        return word in _ON
    raise RequestError(f"{param} must be `on` or `off`, not {value!r}", param=param)


@dataclass(frozen=True, slots=True)
class PlanInfo:
    org_id: str
    tier: str
    byok_override: bool
    changed: tuple[str, ...] = ()
    """What this call changed: `tier`, `byok_override` (empty: it was already so)."""

    def as_json(self) -> dict[str, object]:
        return {"org_id": self.org_id, "tier": self.tier, "byok_override": self.byok_override}

    def text(self) -> str:
        override = "on (BYOK whatever the tier)" if self.byok_override else "off"
        return f"tier: {self.tier}; BYOK override: {override}"


async def org_plan(session: AsyncSession, org_ref: str) -> PlanInfo:
    org = await get_org(session, org_ref)
    settings = await session.get(OrgAISettings, org.id)
    return PlanInfo(org.id, org.tier, bool(settings and settings.byok_enabled))


async def set_plan(
    session: AsyncSession,
    org_ref: str,
    *,
    tier: Tier | None = None,
    byok_override: bool | None = None,
    actor: str = "admin",
    reason: str | None = None,
) -> PlanInfo:
    """Set the org's tier and/or BYOK override (None: leave it), in the caller's transaction.
    `reason`: why the tier changed, kept in its audit event (a Stripe subscription's id and status)."""
    org = await get_org(session, org_ref)
    settings = await session.get(OrgAISettings, org.id)
    changed: list[str] = []
    if tier is not None and org.tier != tier.value:
        details: dict[str, object] = {"tier": tier.value, "was": org.tier}
        if reason is not None:
            details["reason"] = reason
        _audit(session, org, actor, "org.tier", details)
        org.tier = tier.value
        changed.append("tier")
    if byok_override is not None and bool(settings and settings.byok_enabled) != byok_override:
        if settings is None:
            settings = OrgAISettings(org_id=org.id, routing={})
            session.add(settings)
        settings.byok_enabled = byok_override
        _audit(session, org, actor, "org.byok_override", {"byok_override": byok_override})
        changed.append("byok_override")
    if changed:
        await bump(session, org.id)
    return PlanInfo(org.id, org.tier, bool(settings and settings.byok_enabled), tuple(changed))


def _audit(session: AsyncSession, org: Org, actor: str, action: str, details: dict[str, object]) -> None:
    session.add(
        AuditEvent(
            org_id=org.id, actor=actor, action=action, target_type="org", target_id=org.id, details=details
        )
    )
