"""Who is connecting: a server API key in `Authorization`, or a short-lived `?token=`.

A token names a key, its org and its agent; all three are checked against the key's live row,
and the principal the connection acts as is built from that row, never from the token alone.
Either way an expired key is `Expired` (the endpoint says so) and a use is noted for the key's
last-used time, as on `/v1`.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.accounts import Principal, principal_of
from server.realtime.tokens import TokenSigner
from server.services import Services
from server.tables import ApiKey
from server.v1.auth import Expired, bearer_token


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    model: str | None = None
    """The model a token was minted for; the query's `model` wins when both are given."""


async def identify(
    services: Services, signer: TokenSigner, authorization: bytes | None, token: str | None
) -> Caller | Expired | None:
    """The caller, `Expired` for a key past its expiry, or None (unknown, revoked, forged)."""
    keys = services.gateway.api_keys
    presented = bearer_token(authorization)
    if presented is not None:
        checked = await keys.check(presented)
        return Caller(checked) if isinstance(checked, Principal) else checked
    if token:
        claims = signer.verify(token)
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
    return None


async def authenticate(
    services: Services, signer: TokenSigner, authorization: bytes | None, token: str | None
) -> Caller | None:
    """The caller of a usable key, or None (for surfaces with no way to say why)."""
    found = await identify(services, signer, authorization, token)
    return found if isinstance(found, Caller) else None
