"""Admin bearer-token check. With no token (PATCHBAY_ADMIN_API=false) the admin API is off, not open."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from server.services import Services


def require_admin(request: Request) -> None:
    services: Services = request.app.state.services
    token = services.admin_token
    if token is None:
        raise HTTPException(
            503,
            detail={"type": "admin_disabled", "message": "the admin API is turned off on this server (PATCHBAY_ADMIN_API=false)"},
        )
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.encode(), token.get_secret_value().encode()):
        raise HTTPException(
            401,
            detail={"type": "unauthorized", "message": "missing or wrong admin token"},
            headers={"www-authenticate": "Bearer"},
        )
