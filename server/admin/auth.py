"""Admin bearer-token check. With no token (PATCHBAY_ADMIN_API=false) the admin API is off, not open; an empty
presented token is never accepted, whatever the configured one is.
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request
from pydantic import SecretStr

from server.services import Services


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
