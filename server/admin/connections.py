"""Admin endpoints for an org's AI Connections, its agents and its routing matrix.

Keys are accepted in request bodies and never returned: responses show a fingerprint
(a short prefix and the last four characters) and when the key was set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from foundation.errors import ForbiddenError
from providers.vault.secret import Secret
from routing.agents import AgentInfo
from routing.capability_proposals import propose
from routing.conformance.evidence import MeasuredCapabilities
from routing.conformance.store import load_results
from routing.connections import ConnectionInfo, describe, key_secret
from routing.declared_models import parse_model_spec
from routing.ref_check import check_refs, load_org_routing, refuse
from routing.verify import speaks, verify
from routing.voice_settings import VoiceSettings
from server import accounts
from server.admin.auth import require_admin
from server.admin.orgs import CallerDep, ServicesDep
from server.services import Services
from voice.verify import voice_probe

router = APIRouter(prefix="/admin/v1/orgs/{org}", dependencies=[Depends(require_admin)], tags=["admin"])


class DeclaredPriceIn(BaseModel):
    """USD per unit as exact decimal strings (`"0.15"`); whole numbers may be JSON integers."""

    model_config = ConfigDict(extra="forbid")

    input: str | int | None = Field(default=None, description="USD per 1M input tokens.")
    output: str | int | None = Field(default=None, description="USD per 1M output tokens.")
    cached_input: str | int | None = Field(
        default=None, description="USD per 1M cached input tokens (default: input)."
    )
    cache_write: str | int | None = Field(
        default=None, description="USD per 1M cache-write tokens (default: input)."
    )
    per_minute: str | int | None = Field(
        default=None, description="USD per minute of audio (STT, or TTS output)."
    )
    per_1m_chars: str | int | None = Field(default=None, description="USD per 1M characters (TTS).")

    @field_validator("*", mode="before")
    @classmethod
    def _no_floats(cls, value: object) -> object:
        if isinstance(value, float | bool):
            raise ValueError(
                'prices are exact decimal strings, such as "0.15", not JSON numbers with a fraction'
            )
        return value


class DeclaredModelIn(BaseModel):
    """A declared model: `{"id", "capabilities"?, "price"?}`, or a string `ID[:cap,cap...]`
    (`llama-3-70b:text,tools,json`; routing/declared_models.py)."""

    id: str = Field(min_length=1)
    capabilities: list[str] = Field(default_factory=lambda: ["text"])
    price: DeclaredPriceIn | None = Field(
        default=None,
        description="Wins over the catalog's price for this connection's model (docs/billing.md#declared-prices).",
    )

    @model_validator(mode="before")
    @classmethod
    def _bare_id(cls, value: object) -> object:
        # One model type rather than `str | DeclaredModelIn`: a bad price is then reported at its
        # own path (`models.0.price.input`), not as the string branch's mismatch.
        return parse_model_spec(value) if isinstance(value, str) else value


class ConnectionCreate(BaseModel):
    provider: str
    name: str | None = None
    base_url: str | None = None
    models: list[DeclaredModelIn] = Field(default_factory=list)
    key: SecretStr | None = Field(default=None, description="Write-only; never returned.")
    env_reference: str | None = Field(default=None, max_length=128)


class ConnectionUpdate(BaseModel):
    base_url: str | None = None
    models: list[DeclaredModelIn] | None = None
    enabled: bool | None = None


class KeyIn(BaseModel):
    key: SecretStr = Field(description="Write-only; never returned.")


class OrderIn(BaseModel):
    provider: str
    profiles: list[str]


class KeyOut(BaseModel):
    fingerprint: str
    set_at: datetime | None


class HealthOut(BaseModel):
    status: str | None
    checked_at: datetime | None
    latency_ms: int | None
    error_class: str | None
    models_found: list[str] | None


class ConnectionOut(BaseModel):
    id: str
    profile_id: str
    provider: str
    name: str
    base_url: str | None
    status: str
    position: int
    credential_kind: str
    credential_source: str
    billing_source: str
    key: KeyOut | None
    env_reference: str | None
    models: list[dict[str, Any]]
    health: HealthOut
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, info: ConnectionInfo) -> ConnectionOut:
        return cls(
            id=info.id,
            profile_id=info.profile_id,
            provider=info.provider,
            name=info.name,
            base_url=info.base_url,
            status=info.status,
            position=info.position,
            credential_kind=info.credential_kind,
            credential_source=info.credential_source,
            billing_source=info.billing_source,
            key=KeyOut(fingerprint=info.key.fingerprint, set_at=info.key.set_at) if info.key else None,
            env_reference=info.env_reference,
            models=info.models,
            health=HealthOut(**vars_of(info.health)),
            created_at=info.created_at,
            updated_at=info.updated_at,
        )


def vars_of(obj: object) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}  # type: ignore[attr-defined]


class TestIn(BaseModel):
    model: str | None = Field(
        default=None, description="Model for the tiny prompt; default: a declared or the cheapest known one."
    )


class ProbeOut(BaseModel):
    name: str
    ok: bool
    latency_ms: float
    error_class: str | None
    status: int | None
    message: str | None
    models: list[str]


class ProposalOut(BaseModel):
    """A model the endpoint serves and the capabilities to declare for it (routing/capability_proposals.py)."""

    model: str
    capabilities: list[str]
    source: str
    listed: bool
    declared: list[str] | None
    spec: str


class VerificationOut(BaseModel):
    ok: bool
    probes: list[ProbeOut]
    connection: ConnectionOut
    proposals: list[ProposalOut] = Field(default_factory=list)


class VoiceSettingsIn(BaseModel):
    """What an agent's voice sessions start with. A field left out (or null) stays as it is; an
    empty string clears it. Values are checked by `routing.voice_settings`, whose errors name
    the field (`voice_settings.language`)."""

    model_config = ConfigDict(extra="forbid")

    voice: str | None = None
    instructions: str | None = None
    language: str | None = None
    output_format: str | None = None

    def changes(self) -> dict[str, str | None]:
        return self.model_dump(exclude_none=True)


class VoiceSettingsOut(BaseModel):
    voice: str | None
    instructions: str | None
    language: str | None
    output_format: str | None

    @classmethod
    def of(cls, settings: VoiceSettings) -> VoiceSettingsOut:
        return cls(
            voice=settings.voice,
            instructions=settings.instructions,
            language=settings.language,
            output_format=settings.output_format,
        )


class AgentIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    default_model: str | None = None
    chains: dict[str, list[str]] = Field(default_factory=dict)
    voice_settings: VoiceSettingsIn | None = None


class AgentUpdate(BaseModel):
    default_model: str | None = None
    chains: dict[str, list[str]] | None = None
    voice_settings: VoiceSettingsIn | None = None


class AgentOut(BaseModel):
    id: str
    name: str
    default_model: str | None
    chains: dict[str, list[str]]
    voice_settings: VoiceSettingsOut
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, info: AgentInfo) -> AgentOut:
        return cls(
            id=info.id,
            name=info.name,
            default_model=info.default_model,
            chains=info.chains,
            voice_settings=VoiceSettingsOut.of(info.voice_settings),
            created_at=info.created_at,
            updated_at=info.updated_at,
        )


class RoutingIn(BaseModel):
    default_model: str | None = None
    chains: dict[str, list[str]] | None = None
    allowed_models: list[str] | None = None


class RoutingOut(BaseModel):
    default_model: str | None
    chains: dict[str, list[str]]
    allowed_models: list[str] | None


def models_of(items: list[DeclaredModelIn] | None) -> list[str | dict[str, Any]] | None:
    if items is None:
        return None
    return [m.model_dump(exclude_none=True) for m in items]


def secret_of(value: SecretStr | None) -> Secret | None:
    return key_secret(value.get_secret_value()) if value is not None else None


async def _refuse_unserved(
    svc: Services,
    session: Any,
    org_id: str,
    *,
    chains: Mapping[str, Sequence[str]] | None = None,
    default_model: str | None = None,
    allowed_models: Sequence[str] | None = None,
) -> None:
    """A routing change naming a ref no connection serves, or a model lacking its intent's
    capability, is refused with a 400 naming the field (routing/ref_check.py)."""
    org = await load_org_routing(session, org_id)
    refuse(
        check_refs(
            org,
            svc.gateway.catalog,
            chains=chains,
            default_model=default_model,
            allowed_models=allowed_models,
        )
    )


async def _org_id(svc: Services, session: Any, org: str) -> str:
    return (await accounts.get_org(session, org)).id


@router.post("/connections", status_code=201, response_model=ConnectionOut)
async def create_connection(
    org: str, body: ConnectionCreate, svc: ServicesDep, caller: CallerDep
) -> ConnectionOut:
    if body.env_reference is not None and not caller.is_operator:
        # The variable is read from this server's environment: only its operator may point at it.
        raise ForbiddenError(
            "only the server's operator may create a connection whose key is read from the server's environment "
            "(env_reference); send the key itself instead",
            param="env_reference",
        )
    async with svc.db.session() as s:
        org_id = await _org_id(svc, s, org)
        info = await svc.connections().create(
            s,
            org_id,
            provider=body.provider,
            name=body.name,
            base_url=body.base_url,
            models=models_of(body.models),
            key=secret_of(body.key),
            env_reference=body.env_reference,
        )
    svc.config_changed(org_id)
    return ConnectionOut.of(info)


@router.get("/connections", response_model=list[ConnectionOut])
async def list_connections(org: str, svc: ServicesDep) -> list[ConnectionOut]:
    async with svc.db.session() as s:
        org_id = await _org_id(svc, s, org)
        return [ConnectionOut.of(i) for i in await svc.connections().list_all(s, org_id)]


@router.get("/connections/{ref}", response_model=ConnectionOut)
async def get_connection(org: str, ref: str, svc: ServicesDep) -> ConnectionOut:
    async with svc.db.session() as s:
        org_id = await _org_id(svc, s, org)
        return ConnectionOut.of(describe(await svc.connections().get(s, org_id, ref)))


@router.patch("/connections/{ref}", response_model=ConnectionOut)
async def update_connection(
    org: str, ref: str, body: ConnectionUpdate, svc: ServicesDep, caller: CallerDep
) -> ConnectionOut:
    async with svc.db.session() as s:
        org_id = await _org_id(svc, s, org)
        moving = body.base_url is not None and not caller.is_operator
        if moving and (await svc.connections().get(s, org_id, ref)).env_reference is not None:
            # Moving it would send the server's own key to wherever the new URL points.
            raise ForbiddenError(
                "only the server's operator may move a connection whose key comes from the server's environment",
                param="base_url",
            )
        info = await svc.connections().update(
            s, org_id, ref, base_url=body.base_url, models=models_of(body.models), enabled=body.enabled
        )
    svc.config_changed(org_id)
    return ConnectionOut.of(info)


@router.put("/connections/{ref}/key", response_model=ConnectionOut)
async def replace_key(org: str, ref: str, body: KeyIn, svc: ServicesDep) -> ConnectionOut:
    async with svc.db.session() as s:
        org_id = await _org_id(svc, s, org)
        info = await svc.connections().replace_key(s, org_id, ref, key_secret(body.key.get_secret_value()))
    svc.config_changed(org_id)
    # A new key deserves a fresh start: failures of the old one no longer say anything.
    await svc.gateway.cooldowns.clear(org_id, info.profile_id)
    return ConnectionOut.of(info)


@router.post("/connections/{ref}/revoke", response_model=ConnectionOut)
async def revoke_connection(org: str, ref: str, svc: ServicesDep) -> ConnectionOut:
    async with svc.db.session() as s:
        org_id = await _org_id(svc, s, org)
        info = await svc.connections().revoke(s, org_id, ref)
    svc.config_changed(org_id)
    return ConnectionOut.of(info)


@router.delete("/connections/{ref}", response_model=ConnectionOut)
async def delete_connection(org: str, ref: str, svc: ServicesDep) -> ConnectionOut:
    async with svc.db.session() as s:
        org_id = await _org_id(svc, s, org)
        info = await svc.connections().delete(s, org_id, ref)
    svc.config_changed(org_id)
    return ConnectionOut.of(info)


@router.post("/connections/{ref}/test", response_model=VerificationOut)
async def test_connection(
    org: str, ref: str, svc: ServicesDep, body: TestIn | None = None
) -> VerificationOut:
    """Run the probes (auth, model list, a tiny prompt) and store the result as health metadata."""
    async with svc.db.session() as s:
        org_id = await _org_id(svc, s, org)
        row = await svc.connections().get(s, org_id, ref)
        credential = await svc.gateway.registry.credential_for(s, row)
        tools = svc.verify_tools()
        voice = [voice_probe(tools.clients)] if speaks(row) else []
        outcome = await verify(row, credential, tools, model=body.model if body else None, extra_probes=voice)
        info = describe(row)
        evidence = MeasuredCapabilities(await load_results(s, [row.id]))
        proposals = propose(row.provider, outcome.models, row.models or [], tools.catalog, evidence)
    svc.config_changed(org_id)
    return VerificationOut(
        ok=outcome.ok,
        probes=[
            ProbeOut(
                name=r.name,
                ok=r.ok,
                latency_ms=round(r.latency_ms, 1),
                error_class=r.error_class.value if r.error_class else None,
                status=r.status,
                message=r.message,
                models=list(r.models),
            )
            for r in outcome.results
        ],
        connection=ConnectionOut.of(info),
        proposals=[
            ProposalOut(
                model=p.model,
                capabilities=list(p.capabilities),
                source=p.source,
                listed=p.listed,
                declared=list(p.declared) if p.declared is not None else None,
                spec=p.spec,
            )
            for p in proposals
        ],
    )


@router.put("/connections-order", response_model=list[ConnectionOut])
async def reorder_connections(org: str, body: OrderIn, svc: ServicesDep) -> list[ConnectionOut]:
    async with svc.db.session() as s:
        org_id = await _org_id(svc, s, org)
        infos = await svc.connections().reorder(s, org_id, body.provider, body.profiles)
    svc.config_changed(org_id)
    return [ConnectionOut.of(i) for i in infos]


@router.post("/agents", status_code=201, response_model=AgentOut)
async def create_agent(org: str, body: AgentIn, svc: ServicesDep) -> AgentOut:
    async with svc.db.session() as s:
        org_id = await _org_id(svc, s, org)
        info = await svc.agents().create(
            s,
            org_id,
            body.name,
            chains=body.chains,
            default_model=body.default_model,
            voice_settings=body.voice_settings.changes() if body.voice_settings else None,
        )
        # After the save, which reports malformed refs first; a refusal rolls it back.
        await _refuse_unserved(svc, s, org_id, chains=body.chains, default_model=body.default_model)
    svc.config_changed(org_id)
    return AgentOut.of(info)


@router.get("/agents", response_model=list[AgentOut])
async def list_agents(org: str, svc: ServicesDep) -> list[AgentOut]:
    async with svc.db.session() as s:
        org_id = await _org_id(svc, s, org)
        return [AgentOut.of(a) for a in await svc.agents().list_all(s, org_id)]


@router.patch("/agents/{name}", response_model=AgentOut)
async def update_agent(org: str, name: str, body: AgentUpdate, svc: ServicesDep) -> AgentOut:
    async with svc.db.session() as s:
        org_id = await _org_id(svc, s, org)
        info = await svc.agents().update(
            s,
            org_id,
            name,
            chains=body.chains,
            default_model=body.default_model,
            voice_settings=body.voice_settings.changes() if body.voice_settings else None,
        )
        # After the save, which reports malformed refs first; a refusal rolls it back.
        await _refuse_unserved(svc, s, org_id, chains=body.chains, default_model=body.default_model)
    svc.config_changed(org_id)
    return AgentOut.of(info)


@router.delete("/agents/{name}", response_model=AgentOut)
async def delete_agent(org: str, name: str, svc: ServicesDep) -> AgentOut:
    async with svc.db.session() as s:
        org_id = await _org_id(svc, s, org)
        info = await svc.agents().delete(s, org_id, name)
    svc.config_changed(org_id)
    return AgentOut.of(info)


@router.get("/routing", response_model=RoutingOut)
async def get_routing(org: str, svc: ServicesDep) -> RoutingOut:
    async with svc.db.session() as s:
        org_id = await _org_id(svc, s, org)
        row = await svc.agents().org_routing(s, org_id)
        if row is None:
            return RoutingOut(default_model=None, chains={}, allowed_models=None)
        return RoutingOut(
            default_model=row.default_model, chains=dict(row.routing or {}), allowed_models=row.allowed_models
        )


@router.put("/routing", response_model=RoutingOut)
async def set_routing(org: str, body: RoutingIn, svc: ServicesDep) -> RoutingOut:
    async with svc.db.session() as s:
        org_id = await _org_id(svc, s, org)
        row = await svc.agents().set_org_routing(
            s,
            org_id,
            chains=body.chains,
            default_model=body.default_model,
            allowed_models=body.allowed_models,
        )
        await _refuse_unserved(
            svc,
            s,
            org_id,
            chains=body.chains,
            default_model=body.default_model,
            allowed_models=body.allowed_models,
        )
        out = RoutingOut(
            default_model=row.default_model, chains=dict(row.routing or {}), allowed_models=row.allowed_models
        )
    svc.config_changed(org_id)
    return out
