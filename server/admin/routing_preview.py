"""`GET /admin/v1/orgs/{org}/routing/preview`: why each model of a chain can or cannot be used.

Read-only (the `read` permission, server/access/policy.py): it explains the chain a request for
`intent` follows now (with `agent`, the chain of a key bound to that agent), or, with `chain`,
a chain being edited that is not saved yet; and every model the org's connections offer, for
the same intent. The AI settings page's chain editor validates with it as you edit; saving still
goes through `PUT .../routing` and `PATCH .../agents/{name}`, which validate again.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from server import accounts
from server.admin.auth import require_admin
from server.admin.orgs import ServicesDep
from server.explain import PreviewOut, parse_intent, preview

router = APIRouter(prefix="/admin/v1/orgs/{org}", dependencies=[Depends(require_admin)], tags=["admin"])


@router.get("/routing/preview", response_model=PreviewOut)
async def routing_preview(
    org: str,
    svc: ServicesDep,
    intent: str = Query(default="chat", description="The task intent (`chat`, `vision`, `tts`, ...)."),
    agent: str | None = Query(
        default=None, description="Explain as a request with an API key bound to this agent."
    ),
    chain: str | None = Query(
        default=None,
        description="Model refs separated by commas: explain this chain instead of the saved one.",
    ),
) -> PreviewOut:
    wanted = parse_intent(intent)
    async with svc.db.session() as s:
        org_id = (await accounts.get_org(s, org)).id
    refs = chain.split(",") if chain is not None else None
    return await preview(svc.gateway, org_id, wanted, agent or None, refs)
