"""Admin bearer-token check. With no token (PATCHBAY_ADMIN_API=false) the admin API is off, not open; an empty
presented token is never accepted, whatever the configured one is.

`AdminGate` runs the check for every `/admin/` path before the app sees the request, so a caller
without the token never gets its body read or parsed (FastAPI parses a route's body before it
solves the route's dependencies). `require_admin` stays on the routers as well, so a route is
guarded wherever it is mounted.
"""

from __future__ import annotations

import hmac

import orjson
from fastapi import HTTPException, Request
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from server.services import Services

ADMIN_PREFIX = "/admin/"


def refusal(token: SecretStr | None, authorization: str | None) -> HTTPException | None:
    """Why the request may not use the admin API, or None when the presented token is right."""
    if token is None:
        return HTTPException(
            503,
            detail={"type": "admin_disabled", "message": "the admin API is turned off on this server (PATCHBAY_ADMIN_API=false)"},
        )
    scheme, _, presented = (authorization or "").partition(" ")
    expected = token.get_secret_value().encode()
    # An empty token is refused on its own, whatever the configured one is, and the digest
    # compare stays constant-time over what was presented.
    if scheme.lower() != "bearer" or not presented or not expected or not hmac.compare_digest(presented.encode(), expected):
        return HTTPException(
            401,
            detail={"type": "unauthorized", "message": "missing or wrong admin token"},
            headers={"www-authenticate": "Bearer"},
        )
    return None


def require_admin(request: Request) -> None:
    services: Services = request.app.state.services
    refused = refusal(services.admin_token, request.headers.get("authorization"))
    if refused is not None:
        raise refused

class AdminGate:
    """Pure ASGI middleware: answer 401/503 for `/admin/` requests without the token, unread."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        services: Services = scope["app"].state.services
        authorization = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        refused = refusal(services.admin_token, authorization)
        if refused is None:
            await self.app(scope, receive, send)
            return
        body = orjson.dumps({"error": refused.detail})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers += [(k.encode(), v.encode()) for k, v in (refused.headers or {}).items()]
        await send({"type": "http.response.start", "status": refused.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body})
