"""Who is connecting: a server API key in `Authorization`, or a short-lived `?token=`.

A token names a key, its org and its agent; all three are checked against the key's live row,
and the principal the connection acts as is built from that row, never from the token alone.
Either way an expired key is `Expired` (the endpoint says so) and a use is noted for the key's
last-used time, as on `/v1`. A genuine token past its expiry is `TokenExpired` (the realtime
endpoint says so, so a page knows to fetch a fresh one); it still counts as a failure.

A key or token that does not check out counts against the caller's address
(server/auth_throttle.py); past the limit the address is refused for a while, and the
surface answers 429 (or its closest equivalent) with the seconds to wait. Presenting nothing
at all is refused without being counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi.responses import JSONResponse

from server.accounts import Principal, principal_of
from server.auth_throttle import lockout_headers, lockout_message
from server.errors import with_request_id
from server.realtime.tokens import TokenSigner
from server.services import Services
from server.tables import ApiKey
from server.v1.auth import Expired, bearer_token


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    model: str | None = None
    """The model a token was minted for; the query's `model` wins when both are given."""


@dataclass(frozen=True, slots=True)
class Refused:
    """No caller: nothing was presented, or what was presented did not check out."""

    retry_after: float | None = None
    """Set when the address is locked out after repeated failures: seconds until it may retry."""


@dataclass(frozen=True, slots=True)
class TokenExpired:
    """A token this server signed, presented after its expiry (epoch seconds)."""

    expires_at: int


async def identify(
    services: Services,
    signer: TokenSigner,
    authorization: bytes | None,
    token: str | None,
    *,
    address: str | None,
    surface: str,
) -> Caller | Expired | TokenExpired | Refused:
    """The caller, `Expired` for a key past its expiry, `TokenExpired` for a token past its
    own, or why not; a failed key or token (unknown, revoked, forged) counts against `address`."""
    presented = bearer_token(authorization)
    if presented is None and not token:
        return Refused()
    found = await _check(services, signer, presented, token)
    if found is not None:
        return found
    retry_after = await services.auth_throttle.failed(address, surface=surface)
    if presented is None and token and retry_after is None:
        expired = signer.expired_at(token)
        if expired is not None:
            return TokenExpired(expired)
    return Refused(retry_after)


async def _check(
    services: Services, signer: TokenSigner, presented: str | None, token: str | None
) -> Caller | Expired | None:
    keys = services.gateway.api_keys
    if presented is not None:
        checked = await keys.check(presented)
        return Caller(checked) if isinstance(checked, Principal) else checked
    claims = signer.verify(token or "")
    if claims is None:
        return None
    # The token outlives nothing: a key revoked after minting closes the door at once.
    # Its org and agent must still be the key's own, so a token signed by anyone holding
    # the secret cannot carry one org's key into another org (or onto another agent).
    async with services.db.session() as session:
        row = await session.get(ApiKey, claims.principal.key_id)
    if row is None or row.revoked_at is not None:
        return None
    if (row.org_id, row.agent_id) != (claims.principal.org_id, claims.principal.agent_id):
        return None
    vetted = keys.vet(principal_of(row))
    return Caller(vetted, claims.model) if isinstance(vetted, Principal) else vetted


async def authenticate(
    services: Services,
    signer: TokenSigner,
    authorization: bytes | None,
    token: str | None,
    *,
    address: str | None,
    surface: str,
) -> Caller | Refused:
    """The caller of a usable key, or why not (for surfaces with no way to say a key expired:
    an expired key is refused like an unknown one, and not counted as a guess)."""
    found = await identify(services, signer, authorization, token, address=address, surface=surface)
    return Refused() if isinstance(found, Expired | TokenExpired) else found


def locked_response(retry_after: float) -> JSONResponse:
    """429 in the OpenAI-style error shape the realtime HTTP routes use."""
    return JSONResponse(
        {
            "error": with_request_id(
                {
                    "type": "rate_limit_error",
                    "code": "auth_failures_exceeded",
                    "message": lockout_message(retry_after),
                }
            )
        },
        status_code=429,
        headers=lockout_headers(retry_after),
    )
