"""An org's gate settings: on/off, threshold overrides, operator overrides. Each write is audited
and bumps the org's config version in the caller's transaction, so every process's snapshot
(and with it the resolver's gates) follows within its config poll."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from foundation.audit import AuditEvent
from foundation.errors import RequestError
from routing.config_versions import bump
from routing.conformance.gates import DEFAULT_THRESHOLDS, GATED, parse_thresholds
from routing.tables import OrgAISettings

_GATED_NAMES = tuple(c.value for c in GATED)


@dataclass(frozen=True, slots=True)
class GateSettings:
    org_id: str
    enabled: bool
    thresholds: dict[str, float]
    """Every capability's threshold: the org's override, else the default."""
    overrides: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "conformance_gates": self.enabled,
            "conformance_thresholds": self.thresholds,
            "conformance_overrides": self.overrides,
        }


def _info(org_id: str, row: OrgAISettings | None) -> GateSettings:
    thresholds = dict(DEFAULT_THRESHOLDS)
    thresholds.update((row.conformance_thresholds or {}) if row else {})
    return GateSettings(
        org_id,
        bool(row and row.conformance_gates),
        thresholds,
        list(row.conformance_overrides or []) if row else [],
    )


async def gate_settings(session: AsyncSession, org_id: str) -> GateSettings:
    return _info(org_id, await session.get(OrgAISettings, org_id))


async def _row(session: AsyncSession, org_id: str) -> OrgAISettings:
    row = await session.get(OrgAISettings, org_id)
    if row is None:
        row = OrgAISettings(org_id=org_id, routing={})
        session.add(row)
    return row


def _audit(session: AsyncSession, org_id: str, actor: str, action: str, details: dict[str, object]) -> None:
    session.add(
        AuditEvent(
            org_id=org_id, actor=actor, action=action, target_type="org", target_id=org_id, details=details
        )
    )


async def set_gates(
    session: AsyncSession,
    org_id: str,
    *,
    enabled: bool | None = None,
    thresholds: Mapping[str, object] | None = None,
    actor: str = "admin",
) -> GateSettings:
    """Turn the org's gates on or off and/or merge threshold overrides (None: leave it)."""
    if enabled is None and thresholds is None:
        return await gate_settings(session, org_id)
    row = await _row(session, org_id)
    changed = False
    if enabled is not None and bool(row.conformance_gates) != enabled:
        row.conformance_gates = enabled
        _audit(session, org_id, actor, "org.conformance_gates", {"conformance_gates": enabled})
        changed = True
    if thresholds is not None:
        merged = {**(row.conformance_thresholds or {}), **parse_thresholds(thresholds)}
        if merged != (row.conformance_thresholds or {}):
            row.conformance_thresholds = merged
            _audit(session, org_id, actor, "org.conformance_thresholds", {"conformance_thresholds": merged})
            changed = True
    if changed:
        await bump(session, org_id)
    return _info(org_id, row)


async def set_override(
    session: AsyncSession,
    org_id: str,
    *,
    connection: str,
    model: str,
    capability: str,
    on: bool,
    reason: str,
    actor: str = "operator",
) -> GateSettings:
    """Let (connection, model) through the `capability` gate whatever was measured (`on`), or
    take that back; audited as `conformance.override` with the reason given."""
    if capability not in _GATED_NAMES:
        raise RequestError(
            f"no gate {capability!r}; the gated capabilities are {', '.join(_GATED_NAMES)}",
            param="capability",
        )
    if not reason.strip():
        raise RequestError("an override needs a reason (it is kept in the audit log)", param="reason")
    row = await _row(session, org_id)
    entry = {"connection": connection, "model": model, "capability": capability}
    kept = [o for o in row.conformance_overrides or [] if o != entry]
    row.conformance_overrides = [*kept, entry] if on else kept
    _audit(session, org_id, actor, "conformance.override", {**entry, "on": on, "reason": reason.strip()})
    await bump(session, org_id)
    return _info(org_id, row)
