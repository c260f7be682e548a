"""GET /v1/models and /v1/models/{id}: what the caller's key may ask for, from the org's snapshot.

Listed: the org's agents (`agent:<name>`), every model its active connections offer
(`provider/model`, or `<custom endpoint>/model`), and the catalog's aliases whose provider the
org has connected. An allowlist, when the org has one, filters the concrete models; a key with a
model list sees only the models on it (`server.key_scope.model_allowed`), so what it lists is
what it may ask for.
"""

from __future__ import annotations

import orjson
from starlette.types import Receive, Scope, Send

from providers.contract import ProviderId
from routing.catalog import Catalog
from routing.errors import NoRouteError
from routing.model import ConnectionStatus, OrgRouting
from server.accounts import Principal
from server.key_scope import model_allowed
from server.v1.asgi import admit, gateway_of, routing_headers, send_body, send_error
from server.v1.chat import render
from server.v1.errors import ApiError

_CREATED = 1_764_000_000


def model_ids(org: OrgRouting, catalog: Catalog) -> dict[str, str]:
    """Model id -> owner (`patchbay` for agents and aliases, else the profile id)."""
    out: dict[str, str] = {f"agent:{name}": "patchbay" for name in sorted(org.agents)}
    connected: set[str] = set()
    for conn in org.all_connections():
        if conn.status is not ConnectionStatus.ACTIVE:
            continue
        part = conn.name if conn.provider is ProviderId.OPENAI_COMPATIBLE else conn.provider.value
        connected.add(part)
        for info in catalog.models_for_connection(conn):
            ref = f"{part}/{info.id}"
            if org.allowlist is None or ref.lower() in org.allowlist:
                out.setdefault(ref, conn.profile_id)
    for alias, target in sorted(catalog.aliases.items()):
        if target.provider in connected and (org.allowlist is None or str(target).lower() in org.allowlist):
            out.setdefault(alias, "patchbay")
    return out


def _model(model_id: str, owner: str) -> dict[str, object]:
    return {"id": model_id, "object": "model", "created": _CREATED, "owned_by": owner}


def key_model_ids(principal: Principal, org: OrgRouting, catalog: Catalog) -> dict[str, str]:
    """`model_ids` less what the key's model list leaves out."""
    ids = model_ids(org, catalog)
    if principal.allowed_models is None:
        return ids
    return {m: owner for m, owner in ids.items() if model_allowed(principal.allowed_models, m, catalog)}


async def _models(scope: Scope, send: Send) -> dict[str, str] | None:
    gateway = gateway_of(scope)
    admitted = await admit(gateway, scope)
    if isinstance(admitted, ApiError):
        await send_error(send, admitted, render, routing_headers(None, None))
        return None
    try:
        org = await gateway.router.org(admitted.org_id)
    except NoRouteError:
        await send_error(
            send, ApiError(401, "invalid_request_error", "the key's organisation no longer exists"), render
        )
        return None
    return key_model_ids(admitted, org, gateway.catalog)


async def list_models(scope: Scope, receive: Receive, send: Send) -> None:
    ids = await _models(scope, send)
    if ids is None:
        return
    body = orjson.dumps({"object": "list", "data": [_model(m, owner) for m, owner in ids.items()]})
    await send_body(send, 200, body, routing_headers(None, None, 0))


async def retrieve_model(scope: Scope, receive: Receive, send: Send) -> None:
    ids = await _models(scope, send)
    if ids is None:
        return
    wanted = scope["path_params"]["model"]
    owner = ids.get(wanted)
    if owner is None:
        error = ApiError(
            404, "invalid_request_error", f"model {wanted!r} is not available", code="model_not_found"
        )
        await send_error(send, error, render, routing_headers(None, None))
        return
    await send_body(send, 200, orjson.dumps(_model(wanted, owner)), routing_headers(None, None, 0))
