"""Who is connecting: a server API key in `Authorization`, or a short-lived `?token=`.

A token names a key, its org and its agent; all three are checked against the key's live row,
and the principal the connection acts as is built from that row, never from the token alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.accounts import Principal
from server.realtime.tokens import TokenSigner
from server.services import Services
from server.tables import ApiKey
from server.v1.auth import bearer_token


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    model: str | None = None
    """The model a token was minted for; the query's `model` wins when both are given."""


async def authenticate(
    services: Services, signer: TokenSigner, authorization: bytes | None, token: str | None
) -> Caller | None:
    presented = bearer_token(authorization)
    if presented is not None:
        principal = await services.gateway.api_keys.authenticate(presented)
        return Caller(principal) if principal is not None else None
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
        return Caller(Principal(key_id=row.id, org_id=row.org_id, agent_id=row.agent_id), claims.model)
    return None
