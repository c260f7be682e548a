"""Import the predecessor's per-org AI settings (one JSON document per org, OpenRouter only).

Each line of the input becomes: the org (its legacy id kept as our id), an OpenRouter
connection `openrouter:legacy` holding the key in the vault, the default model as
`openrouter/<model>`, and the enabled list as the org's allowlist. A line is applied in its
own transaction, so a bad line writes nothing; a re-run with the same input changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.money import parse_usd
from billing.spend_store import get_cap, set_cap
from foundation.audit import AuditEvent
from foundation.db import utcnow
from foundation.errors import RequestError
from foundation.orgs import Org
from foundation.tiers import Tier
from providers.contract import CredentialKind, ProviderId, credential_source_for
from routing.tables import Connection, OrgAISettings
from server.accounts import validate_org_id

LEGACY_CONNECTION_NAME = "legacy"


class LegacySettings(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    org_id: str = Field(alias="orgId", min_length=1, max_length=32)
    org_name: str | None = Field(default=None, alias="orgName")
    openrouter_api_key: str | None = Field(default=None, alias="openrouterApiKey")
    default_model: str | None = Field(default=None, alias="defaultModel")
    enabled_models: list[str] = Field(default_factory=list, alias="enabledModels")
    byok_enabled: bool = Field(default=False, alias="byokEnabled")
    monthly_budget_usd: Decimal | None = Field(default=None, alias="monthlyBudgetUsd", ge=0)

    @field_validator("org_id")
    @classmethod
    def _org_id(cls, v: str) -> str:
        try:
            return validate_org_id(v)
        except RequestError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("monthly_budget_usd")
    @classmethod
    def _budget(cls, v: Decimal | None) -> Decimal | None:
        if v is not None:
            try:
                parse_usd(v, param="monthlyBudgetUsd")
            except RequestError as exc:
                raise ValueError(str(exc)) from None
        return v

    @field_validator("openrouter_api_key")
    @classmethod
    def _key(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.strip()
        return v or None

    def __repr__(self) -> str:
        # The key never reaches a repr, and so never a log line or a traceback.
        return f"LegacySettings(org_id={self.org_id!r})"

    __str__ = __repr__


def openrouter_ref(model: str) -> str:
    """Legacy model ids are OpenRouter ids (`vendor/model`), so the ref always gains the prefix."""
    return f"{ProviderId.OPENROUTER.value}/{model.strip()}"


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    message: str


@dataclass
class OrgReport:
    line: int
    org_id: str
    actions: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.actions)


def parse_lines(lines: Iterable[str]) -> tuple[list[tuple[int, LegacySettings]], list[LineError]]:
    """Validate every line before anything is written. Blank lines are skipped."""
    good: list[tuple[int, LegacySettings]] = []
    bad: list[LineError] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError as exc:
            bad.append(LineError(number, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        if not isinstance(doc, dict):
            bad.append(LineError(number, "expected a JSON object"))
            continue
        try:
            item = LegacySettings.model_validate(doc)
        except ValidationError as exc:
            # input values are left out of the message: one of them may be a key.
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            bad.append(LineError(number, problems))
            continue
        if item.org_id in seen:
            bad.append(LineError(number, f"org {item.org_id!r} already appears on line {seen[item.org_id]}"))
            continue
        seen[item.org_id] = number
        good.append((number, item))
    return good, bad


class KeyStore(Protocol):
    """What the importer needs from the vault."""

    async def put(
        self, session: AsyncSession, *, org_id: str, owner_id: str, field: str, plaintext: str
    ) -> tuple[str, str]:
        """Encrypt and store; return (secret id, fingerprint)."""
        ...

    async def replace(
        self, session: AsyncSession, *, secret_id: str, org_id: str, owner_id: str, field: str, plaintext: str
    ) -> str:
        """Replace the value under the same id; return the new fingerprint."""
        ...

    async def matches(
        self, session: AsyncSession, *, secret_id: str, org_id: str, owner_id: str, field: str, plaintext: str
    ) -> bool:
        """Whether the stored value equals `plaintext` (constant time)."""
        ...


async def apply_one(session: AsyncSession, keys: KeyStore, line: int, item: LegacySettings) -> OrgReport:
    report = OrgReport(line=line, org_id=item.org_id)
    org = await session.get(Org, item.org_id)
    if org is None:
        org = Org(id=item.org_id, name=item.org_name or item.org_id, tier=Tier.FREE.value)
        session.add(org)
        await session.flush()
        report.actions.append("created org")

    settings = await session.get(OrgAISettings, org.id)
    if settings is None:
        settings = OrgAISettings(org_id=org.id, routing={})
        session.add(settings)
    default_ref = openrouter_ref(item.default_model) if item.default_model else None
    allowlist = [openrouter_ref(m) for m in item.enabled_models] or None
    wanted = {
        "default_model": default_ref,
        "allowed_models": allowlist,
        "byok_enabled": item.byok_enabled,
    }
    for attr, value in wanted.items():
        if getattr(settings, attr) != value:
            setattr(settings, attr, value)
            report.actions.append(f"set {attr}")
    # The monthly budget is enforced (billing.spend_caps); a line without one removes it.
    budget = parse_usd(item.monthly_budget_usd) if item.monthly_budget_usd is not None else None
    if await get_cap(session, org.id) != budget:
        await set_cap(session, org.id, None, budget, utcnow())
        report.actions.append("set monthly_budget")

    if item.openrouter_api_key is not None:
        await _import_key(session, keys, org.id, item.openrouter_api_key, report)

    if report.changed:
        session.add(
            AuditEvent(
                org_id=org.id,
                actor="cli",
                action="legacy.import",
                target_type="org",
                target_id=org.id,
                details={"line": line, "actions": report.actions},
            )
        )
    return report


async def _import_key(
    session: AsyncSession, keys: KeyStore, org_id: str, key: str, report: OrgReport
) -> None:
    conn = await session.scalar(
        select(Connection).where(
            Connection.org_id == org_id,
            Connection.provider == ProviderId.OPENROUTER.value,
            Connection.name == LEGACY_CONNECTION_NAME,
        )
    )
    if conn is None:
        position = len(
            (await session.scalars(select(Connection.id).where(Connection.org_id == org_id))).all()
        )
        conn = Connection(
            org_id=org_id,
            provider=ProviderId.OPENROUTER.value,
            name=LEGACY_CONNECTION_NAME,
            position=position,
            status="active",
            credential_kind=CredentialKind.API_KEY.value,
            credential_source=credential_source_for(ProviderId.OPENROUTER, org_owned=True).value,
            models=[],
        )
        session.add(conn)
        await session.flush()
        report.actions.append("created connection openrouter:legacy")
    fields = {"org_id": org_id, "owner_id": conn.id, "field": "api_key"}
    if conn.secret_id is None:
        conn.secret_id, conn.key_fingerprint = await keys.put(session, plaintext=key, **fields)
        conn.key_set_at = utcnow()
        report.actions.append("stored key (encrypted)")
    elif not await keys.matches(session, secret_id=conn.secret_id, plaintext=key, **fields):
        conn.key_fingerprint = await keys.replace(session, secret_id=conn.secret_id, plaintext=key, **fields)
        conn.key_set_at = utcnow()
        report.actions.append("replaced key (encrypted)")
