"""Agents: per-agent default model, per-intent chains that override the org's matrix, and the
voice settings (`routing.voice_settings`) their voice sessions start with."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from foundation.audit import AuditEvent
from foundation.db import new_id
from foundation.errors import ConflictError, NotFoundError, RequestError
from providers.contract import ModelRef
from routing.config_versions import bump
from routing.intents import Intent
from routing.tables import Agent, OrgAISettings
from routing.voice_settings import VoiceSettings, apply_changes, from_stored, stored_with

AGENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
"""An agent's name is a URL path segment and a lookup key: no '/', no dots, no spaces, one case."""


@dataclass(frozen=True, slots=True)
class AgentInfo:
    id: str
    org_id: str
    name: str
    default_model: str | None
    chains: dict[str, list[str]]
    created_at: datetime
    updated_at: datetime
    voice_settings: VoiceSettings = VoiceSettings()


def _info(row: Agent) -> AgentInfo:
    return AgentInfo(
        row.id,
        row.org_id,
        row.name,
        row.default_model,
        dict(row.chains or {}),
        row.created_at,
        row.updated_at,
        from_stored(row.settings),
    )


def normalize_ref(ref: str, *, param: str | None = None) -> str:
    try:
        return str(ModelRef.parse(ref))
    except ValueError as exc:
        raise RequestError(str(exc), param=param) from None


def normalize_chains(chains: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Validate intents and refs; an empty chain removes the override for that intent.

    Errors name the chain at fault as `param` (`chains.chat`)."""
    out: dict[str, list[str]] = {}
    for intent, refs in chains.items():
        try:
            key = Intent(intent.strip().lower()).value
        except ValueError:
            valid = ", ".join(i.value for i in Intent)
            raise RequestError(
                f"unknown intent {intent!r}; use one of {valid}", param=f"chains.{intent}"
            ) from None
        normalized = [normalize_ref(r, param=f"chains.{key}") for r in refs if r.strip()]
        if len(set(normalized)) != len(normalized):
            raise RequestError(f"chain {key} names a model twice", param=f"chains.{key}")
        if normalized:
            out[key] = normalized
    return out


def merge_chains(
    existing: Mapping[str, list[str]] | None, changes: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """Replace the named intents' chains; an empty chain removes that intent's entry."""
    merged = {k: v for k, v in (existing or {}).items() if k not in {i.strip().lower() for i in changes}}
    merged.update(normalize_chains(changes))
    return merged


def parse_chain_option(values: Sequence[str]) -> dict[str, list[str]]:
    """`intent=ref,ref,...` strings (the CLI's `--chain`) into a mapping."""
    chains: dict[str, list[str]] = {}
    for value in values:
        intent, sep, refs = value.partition("=")
        if not sep:
            raise RequestError(f"--chain takes intent=ref,ref,... (got {value!r})")
        chains[intent] = [r for r in refs.split(",") if r.strip()]
    return chains


class Agents:
    def __init__(self, *, actor: str = "admin") -> None:
        self.actor = actor

    async def create(
        self,
        session: AsyncSession,
        org_id: str,
        name: str,
        *,
        chains: Mapping[str, Sequence[str]] | None = None,
        default_model: str | None = None,
        voice_settings: Mapping[str, str | None] | None = None,
    ) -> AgentInfo:
        name = name.strip()
        if not AGENT_NAME.match(name):
            raise RequestError(
                "agent names are 1-64 lower-case letters, digits, '_' and '-', starting with a letter or digit",
                param="name",
            )
        if (
            await session.scalar(select(Agent.id).where(Agent.org_id == org_id, Agent.name == name))
            is not None
        ):
            raise ConflictError(f"agent {name!r} already exists", param="name")
        row = Agent(
            id=new_id("agt"),
            org_id=org_id,
            name=name,
            chains=normalize_chains(chains or {}),
            default_model=normalize_ref(default_model, param="default_model") if default_model else None,
            settings=apply_changes(VoiceSettings(), voice_settings or {}).to_stored(),
        )
        session.add(row)
        await session.flush()
        self._audit(session, row, "agent.create")
        await bump(session, org_id)
        return _info(row)

    async def get(self, session: AsyncSession, org_id: str, name: str) -> Agent:
        row = await session.scalar(select(Agent).where(Agent.org_id == org_id, Agent.name == name))
        if row is None:
            raise NotFoundError(f"no agent {name!r}")
        return row

    async def list_all(self, session: AsyncSession, org_id: str) -> list[AgentInfo]:
        rows = await session.scalars(select(Agent).where(Agent.org_id == org_id).order_by(Agent.name))
        return [_info(r) for r in rows]

    async def update(
        self,
        session: AsyncSession,
        org_id: str,
        name: str,
        *,
        chains: Mapping[str, Sequence[str]] | None = None,
        default_model: str | None = None,
        voice_settings: Mapping[str, str | None] | None = None,
    ) -> AgentInfo:
        """Chains given here replace those intents' chains; others stay. A voice setting given
        as None stays as it is; an empty string clears it."""
        row = await self.get(session, org_id, name)
        if voice_settings:
            row.settings = stored_with(row.settings, apply_changes(from_stored(row.settings), voice_settings))
        if chains is not None:
            row.chains = merge_chains(row.chains, chains)
        if default_model is not None:
            row.default_model = normalize_ref(default_model, param="default_model") if default_model else None
        self._audit(session, row, "agent.update")
        await bump(session, org_id)
        await session.flush()
        return _info(row)

    async def delete(self, session: AsyncSession, org_id: str, name: str) -> AgentInfo:
        row = await self.get(session, org_id, name)
        info = _info(row)
        self._audit(session, row, "agent.delete")
        await session.delete(row)
        await bump(session, org_id)
        await session.flush()
        return info

    async def org_routing(self, session: AsyncSession, org_id: str) -> OrgAISettings | None:
        """The org-level matrix, default model and allowlist; None when never set."""
        return await session.get(OrgAISettings, org_id)

    async def set_org_routing(
        self,
        session: AsyncSession,
        org_id: str,
        *,
        chains: Mapping[str, Sequence[str]] | None = None,
        default_model: str | None = None,
        allowed_models: Sequence[str] | None = None,
    ) -> OrgAISettings:
        """The org-level matrix, default model and allowlist (an empty allowlist removes it)."""
        row = await session.get(OrgAISettings, org_id)
        if row is None:
            row = OrgAISettings(org_id=org_id, routing={})
            session.add(row)
        if chains is not None:
            row.routing = merge_chains(row.routing, chains)
        if default_model is not None:
            row.default_model = normalize_ref(default_model, param="default_model") if default_model else None
        if allowed_models is not None:
            row.allowed_models = [normalize_ref(m, param="allowed_models") for m in allowed_models] or None
        session.add(
            AuditEvent(
                org_id=org_id,
                actor=self.actor,
                action="org.routing_update",
                target_type="org",
                target_id=org_id,
            )
        )
        await bump(session, org_id)
        await session.flush()
        return row

    def _audit(self, session: AsyncSession, row: Agent, action: str) -> None:
        session.add(
            AuditEvent(
                org_id=row.org_id,
                actor=self.actor,
                action=action,
                target_type="agent",
                target_id=row.id,
                details={"name": row.name},
            )
        )
