"""Admin endpoints for an org's request log and its content-logging setting.

- `GET /admin/v1/orgs/{org}/requests`: the org's recent requests, newest first, filtered by
  `since` / `until` (ISO 8601 or a span such as `24h`, as for usage), `status` (`ok`, `error`,
  `cancelled` or an HTTP status), `key` (id or name), `model` (asked or served), `limit`.
- `GET` / `PUT /admin/v1/orgs/{org}/request-log/settings`: whether the org keeps prompts and
  completions (`content_logging`, off by default) and the server's retention in days. A change
  is an audit event (`org.content_logging`) and bumps the org's config version, so every
  process's request path picks it up with the org's routing snapshot.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict

from billing import report
from foundation.db import utcnow
from server import accounts
from server.activity import query
from server.admin.auth import require_admin
from server.admin.orgs import ServicesDep
from server.services import Services

router = APIRouter(prefix="/admin/v1", dependencies=[Depends(require_admin)], tags=["admin"])


class RequestsOut(BaseModel):
    org_id: str
    since: datetime
    until: datetime
    requests: list[query.LoggedRequest]


class SettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content_logging: bool


class SettingsOut(BaseModel):
    org_id: str
    content_logging: bool
    retention_days: int
    """The server's `PATCHBAY_REQUEST_LOG_RETENTION_DAYS`; 0: the request log is off."""


@router.get("/orgs/{org}/requests", response_model=RequestsOut)
async def list_requests(
    org: str,
    svc: ServicesDep,
    since: str = "24h",
    until: str | None = None,
    status: str | None = None,
    key: str | None = Query(default=None, max_length=128),
    model: str | None = Query(default=None, max_length=255),
    limit: int = query.DEFAULT_LIMIT,
) -> RequestsOut:
    """The org's recent /v1 and realtime requests, newest first (docs/admin-api.md)."""
    start, end = report.window(since, until, now=utcnow())
    async with svc.db.session() as s:
        org_id = (await accounts.get_org(s, org)).id
        rows = await query.list_requests(
            s, org_id, since=start, until=end, status=status, key=key, model=model, limit=limit
        )
    return RequestsOut(org_id=org_id, since=start, until=end, requests=rows)


def _settings_out(svc: Services, found: query.RequestLogSettings) -> SettingsOut:
    return SettingsOut(
        org_id=found.org_id,
        content_logging=found.content_logging,
        retention_days=svc.settings.request_log_retention_days,
    )


@router.get("/orgs/{org}/request-log/settings", response_model=SettingsOut)
async def get_settings(org: str, svc: ServicesDep) -> SettingsOut:
    async with svc.db.session() as s:
        found = await query.get_settings(s, org)
    return _settings_out(svc, found)


@router.put("/orgs/{org}/request-log/settings", response_model=SettingsOut)
async def put_settings(org: str, body: SettingsIn, svc: ServicesDep) -> SettingsOut:
    async with svc.db.session() as s:
        found = await query.set_content_logging(s, org, body.content_logging)
    svc.config_changed(found.org_id)
    return _settings_out(svc, found)
