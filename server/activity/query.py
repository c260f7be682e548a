"""Reading an org's request log, and its content-logging setting: what the admin API and the CLI call.

`list_requests` reads newest first through the `(org_id, created_at)` index, with filters on
status, key (id or name), model (asked or served) and a time window; key and agent names are
joined from their tables at read time. `set_content_logging` changes the org's flag in the
caller's transaction with an audit event and a config-version bump, so every process's routing
snapshot (which carries the flag to the request path) reloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from foundation.audit import AuditEvent
from foundation.errors import RequestError
from routing.config_versions import bump
from routing.tables import Agent
from server.accounts import get_org
from server.activity.table import RequestLogRow
from server.tables import ApiKey

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
OUTCOMES = ("ok", "error", "cancelled")


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    id: int
    created_at: datetime
    request_id: str | None
    turn_id: str | None
    surface: str
    api_key_id: str | None
    key_name: str | None
    agent_id: str | None
    agent: str | None
    model: str | None
    intent: str | None
    route: dict[str, Any] | None
    connection: str | None
    served_model: str | None
    billing_source: str | None
    status: int
    outcome: str
    error_type: str | None
    error_class: str | None
    latency_ms: float | None
    input_tokens: int | None
    output_tokens: int | None
    content: dict[str, str | None] | None
    """`{"request", "response"}` when the org logged content for this request; else None."""


@dataclass(frozen=True, slots=True)
class RequestLogSettings:
    org_id: str
    content_logging: bool


def status_condition(status: str) -> ColumnElement[bool]:
    """`ok`, `error` (any failure the caller saw, a stream's error after its 200 too),
    `cancelled` (the caller went away first), or an exact HTTP status such as `429`."""
    text = status.strip().lower()
    if text in OUTCOMES:
        return RequestLogRow.outcome == text
    if text.isdigit() and 100 <= int(text) <= 599:
        return RequestLogRow.status == int(text)
    raise RequestError(
        f"status must be ok, error, cancelled or an HTTP status such as 429, not {status[:20]!r}",
        param="status",
    )


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise RequestError(f"limit must be between 1 and {MAX_LIMIT}", param="limit")
    return limit


async def list_requests(
    session: AsyncSession,
    org_id: str,
    *,
    since: datetime,
    until: datetime,
    status: str | None = None,
    key: str | None = None,
    model: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[LoggedRequest]:
    """The org's requests from `since` (inclusive) to `until` (exclusive), newest first."""
    r = RequestLogRow
    conditions: list[ColumnElement[bool]] = [r.org_id == org_id, r.created_at >= since, r.created_at < until]
    if status:
        conditions.append(status_condition(status))
    if key:
        named = select(ApiKey.id).where(ApiKey.org_id == org_id, ApiKey.name == key)
        conditions.append(or_(r.api_key_id == key, r.api_key_id.in_(named)))
    if model:
        conditions.append(or_(r.model == model, r.served_model == model))
    query = (
        select(r, ApiKey.name, Agent.name)
        .outerjoin(ApiKey, ApiKey.id == r.api_key_id)
        .outerjoin(Agent, Agent.id == r.agent_id)
        .where(*conditions)
        .order_by(r.created_at.desc(), r.id.desc())
        .limit(check_limit(limit))
    )
    return [_logged(row, key_name, agent) for row, key_name, agent in (await session.execute(query)).all()]


def _logged(row: RequestLogRow, key_name: str | None, agent: str | None) -> LoggedRequest:
    content = None
    if row.content_request is not None or row.content_response is not None:
        content = {"request": row.content_request, "response": row.content_response}
    return LoggedRequest(
        id=row.id,
        created_at=row.created_at,
        request_id=row.request_id,
        turn_id=row.turn_id,
        surface=row.surface,
        api_key_id=row.api_key_id,
        key_name=key_name,
        agent_id=row.agent_id,
        agent=agent,
        model=row.model,
        intent=row.intent,
        route=row.route,
        connection=row.connection,
        served_model=row.served_model,
        billing_source=row.billing_source,
        status=row.status,
        outcome=row.outcome,
        error_type=row.error_type,
        error_class=row.error_class,
        latency_ms=row.latency_ms,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        content=content,
    )


async def get_settings(session: AsyncSession, org_ref: str) -> RequestLogSettings:
    org = await get_org(session, org_ref)
    return RequestLogSettings(org_id=org.id, content_logging=org.content_logging)


async def set_content_logging(
    session: AsyncSession, org_ref: str, enabled: bool, *, actor: str = "admin"
) -> RequestLogSettings:
    """Turn the org's content logging on or off (an audit event when it changes). The caller
    tells this process's registry (`Services.config_changed`); other processes see the bump."""
    org = await get_org(session, org_ref)
    if org.content_logging != enabled:
        before = org.content_logging
        org.content_logging = enabled
        session.add(
            AuditEvent(
                org_id=org.id,
                actor=actor,
                action="org.content_logging",
                target_type="org",
                target_id=org.id,
                details={"from": before, "to": enabled},
            )
        )
        await bump(session, org.id)
    return RequestLogSettings(org_id=org.id, content_logging=enabled)
