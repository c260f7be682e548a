"""Admin endpoints for platform connections: the operator manages them, org members see them.

Platform connections are the operator's (no org): every org may route to them as its tier
allows, billed `platform`. `/admin/v1/platform/connections...` is the operator's alone (the
same bodies and answers as an org's connections). An org's members read
`/admin/v1/orgs/{org}/platform-connections`: what the platform offers the org, whether its tier
lets it use them, whether its own connections take precedence, and the org's tier and BYOK
override; no key fingerprint, base URL or environment reference.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from providers.contract import BillingSource
from routing.connections import describe, key_secret
from routing.model import ConnectionView, OrgRouting
from routing.platform import PLATFORM_SCOPE
from server import accounts
from server.admin.auth import require_admin
from server.admin.connections import (
    ConnectionCreate,
    ConnectionOut,
    ConnectionUpdate,
    KeyIn,
    models_of,
    secret_of,
)
from server.admin.orgs import ServicesDep

router = APIRouter(prefix="/admin/v1", dependencies=[Depends(require_admin)], tags=["admin"])
_P = "/platform/connections"


@router.post(_P, status_code=201, response_model=ConnectionOut)
async def create_platform_connection(body: ConnectionCreate, svc: ServicesDep) -> ConnectionOut:
    async with svc.db.session() as s:
        info = await svc.connections().create(
            s,
            None,
            provider=body.provider,
            name=body.name,
            base_url=body.base_url,
            models=models_of(body.models),
            key=secret_of(body.key),
            env_reference=body.env_reference,
        )
    svc.config_changed(PLATFORM_SCOPE)
    return ConnectionOut.of(info)


@router.get(_P, response_model=list[ConnectionOut])
async def list_platform_connections(svc: ServicesDep) -> list[ConnectionOut]:
    async with svc.db.session() as s:
        return [ConnectionOut.of(i) for i in await svc.connections().list_all(s, None)]


@router.get(_P + "/{ref}", response_model=ConnectionOut)
async def get_platform_connection(ref: str, svc: ServicesDep) -> ConnectionOut:
    async with svc.db.session() as s:
        return ConnectionOut.of(describe(await svc.connections().get(s, None, ref)))


@router.patch(_P + "/{ref}", response_model=ConnectionOut)
async def update_platform_connection(ref: str, body: ConnectionUpdate, svc: ServicesDep) -> ConnectionOut:
    async with svc.db.session() as s:
        info = await svc.connections().update(
            s, None, ref, base_url=body.base_url, models=models_of(body.models), enabled=body.enabled
        )
    svc.config_changed(PLATFORM_SCOPE)
    return ConnectionOut.of(info)


@router.put(_P + "/{ref}/key", response_model=ConnectionOut)
async def replace_platform_key(ref: str, body: KeyIn, svc: ServicesDep) -> ConnectionOut:
    async with svc.db.session() as s:
        info = await svc.connections().replace_key(s, None, ref, key_secret(body.key.get_secret_value()))
    # Every org's snapshot reloads; each clears its own cooldown of this profile (key version changed).
    svc.config_changed(PLATFORM_SCOPE)
    return ConnectionOut.of(info)


@router.post(_P + "/{ref}/revoke", response_model=ConnectionOut)
async def revoke_platform_connection(ref: str, svc: ServicesDep) -> ConnectionOut:
    async with svc.db.session() as s:
        info = await svc.connections().revoke(s, None, ref)
    svc.config_changed(PLATFORM_SCOPE)
    return ConnectionOut.of(info)


@router.delete(_P + "/{ref}", response_model=ConnectionOut)
async def delete_platform_connection(ref: str, svc: ServicesDep) -> ConnectionOut:
    async with svc.db.session() as s:
        info = await svc.connections().delete(s, None, ref)
    svc.config_changed(PLATFORM_SCOPE)
    return ConnectionOut.of(info)


class PlatformModelOut(BaseModel):
    """A platform connection as an org sees it: what it offers, never how it is keyed."""

    profile_id: str
    provider: str
    name: str
    status: str
    models: list[dict[str, Any]] = Field(
        description="Declared models (id, capabilities, price in USD); empty: the catalog's models of the provider."
    )
    in_use: bool = Field(
        description="Refs `provider/model` reach it: the org has no connection of the provider that takes precedence."
    )


class PlatformAccessOut(BaseModel):
    tier: str
    byok_override: bool = Field(
        description="The org keeps BYOK whatever its tier (migrated legacy `byokEnabled: true`)."
    )
    billing_sources: list[str] = Field(
        description="Billing sources the org may route to: its tier's, plus BYOK with the override."
    )
    platform_allowed: bool
    connections: list[PlatformModelOut]


def _offer(view: ConnectionView, routing: OrgRouting) -> PlatformModelOut:
    return PlatformModelOut(
        profile_id=view.profile_id,
        provider=view.provider.value,
        name=view.name,
        status=view.status.value,
        models=[
            {
                "id": m.id,
                "capabilities": sorted(c.value for c in m.capabilities),
                **({"price": m.price.usd()} if m.price else {}),
            }
            for m in view.declared_models
        ],
        in_use=view in routing.profiles.get(view.provider, ()),
    )


@router.get("/orgs/{org}/platform-connections", response_model=PlatformAccessOut)
async def org_platform_connections(org: str, svc: ServicesDep) -> PlatformAccessOut:
    async with svc.db.session() as s:
        org_row = await accounts.get_org(s, org)
        settings = await svc.agents().org_routing(s, org_row.id)
    routing = (await svc.gateway.registry.get(org_row.id)).routing
    return PlatformAccessOut(
        tier=routing.tier,
        byok_override=bool(settings and settings.byok_enabled),
        billing_sources=sorted(b.value for b in routing.allowed_billing),
        platform_allowed=BillingSource.PLATFORM in routing.allowed_billing,
        connections=[_offer(v, routing) for views in routing.platform.values() for v in views],
    )
