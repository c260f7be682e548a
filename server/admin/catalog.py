"""`GET /admin/v1/catalog`: what an org can connect and route, straight from the contract.

The web UI builds its provider picker and routing matrix from this, so a provider or intent
added to the contract shows up there without a change to the page.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from foundation.tiers import Tier
from providers.contract import PRESETS, Capability, CredentialKind
from routing.connections import CONNECTABLE
from routing.intents import INTENT_CAPABILITIES, Intent
from routing.voice_settings import OUTPUT_FORMATS
from server.admin.auth import require_admin

router = APIRouter(prefix="/admin/v1", dependencies=[Depends(require_admin)], tags=["admin"])


class ProviderOut(BaseModel):
    id: str
    display_name: str
    default_base_url: str | None
    """None: the connection must name its base URL (a custom endpoint)."""
    key_required: bool
    custom: bool
    """A custom endpoint: its connection name becomes the provider part of its model refs."""


class IntentOut(BaseModel):
    id: str
    capabilities: list[str]
    builtin: str | None = None
    """The built-in engine every chain of this intent ends with (`internal:whisper`), if any."""
    builtin_note: str | None = None
    """Why that engine is a poor floor right now (the Whisper model is missing), if it is."""


class CatalogOut(BaseModel):
    providers: list[ProviderOut]
    intents: list[IntentOut]
    capabilities: list[str]
    tiers: list[str]
    output_formats: list[str]
    """What an agent's voice sessions may send audio as (`voice_settings.output_format`)."""


def catalog(builtin: dict[str, str] | None = None) -> CatalogOut:
    """`builtin`: the voice runtime's `internal_engine_names()` (None: not shown)."""
    providers = [
        ProviderOut(
            id=p.id.value,
            display_name=p.display_name,
            default_base_url=p.base_url or None,
            key_required=CredentialKind.NONE not in p.credential_kinds,
            custom=not p.base_url,
        )
        for p in PRESETS.values()
        if p.id in CONNECTABLE
    ]
    engines = builtin or {}
    missing = engines.get("whisper_model") == "missing"
    intents = [
        IntentOut(
            id=i.value,
            capabilities=sorted(c.value for c in INTENT_CAPABILITIES[i]),
            builtin=engines.get(i.value),
            builtin_note="the Whisper model is missing, so this is pocketsphinx: several times "
            "Whisper's word error rate"
            if i is Intent.STT and missing
            else None,
        )
        for i in Intent
    ]
    return CatalogOut(
        providers=providers,
        intents=intents,
        capabilities=[c.value for c in Capability],
        tiers=[t.value for t in Tier],
        output_formats=list(OUTPUT_FORMATS),
    )


@router.get("/catalog", response_model=CatalogOut)
async def get_catalog(request: Request) -> CatalogOut:
    return catalog(request.app.state.services.voice.internal_engine_names())
