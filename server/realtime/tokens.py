"""Short-lived realtime tokens, for browsers (which cannot set an Authorization header).

A server holding the real API key mints one (`POST /v1/realtime/client_secrets`) and hands it
to the page, which connects with `?token=`. The token is stateless: the API key's id, the org,
the agent, the requested model and an expiry, signed with HMAC-SHA256. It is no key: it names
the key it was minted from, and the connection re-checks that key is not revoked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from server.accounts import Principal

TOKEN_PREFIX = "ek_"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    principal: Principal
    expires_at: int
    model: str | None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(
        self, secret: bytes | None = None, *, ttl: int = 60, clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self.ttl = ttl
        self._clock = clock

    def mint(self, principal: Principal, *, model: str | None = None) -> tuple[str, int]:
        """A token and its expiry (epoch seconds)."""
        expires = int(self._clock()) + self.ttl
        body = orjson.dumps(
            {"k": principal.key_id, "o": principal.org_id, "a": principal.agent_id, "e": expires, "m": model}
        )
        payload = _b64(body)
        return f"{TOKEN_PREFIX}{payload}.{self._sign(payload)}", expires

    def verify(self, token: str) -> TokenClaims | None:
        """The claims of a valid, unexpired token; None for anything else (no reason is leaked)."""
        claims = self._open(token)
        if claims is None or claims.expires_at < self._clock():
            return None
        return claims

    def expired_at(self, token: str) -> int | None:
        """When a genuine (correctly signed) token expired, if it has; None for anything else.

        Only a token this signer made can say it expired, so the refusal can name the cause
        (a page should fetch a fresh token) without telling a forger anything."""
        claims = self._open(token)
        if claims is None or claims.expires_at >= self._clock():
            return None
        return claims.expires_at

    def _open(self, token: str) -> TokenClaims | None:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 2048:
            return None
        payload, _, signature = token[len(TOKEN_PREFIX) :].partition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return None
        try:
            claims = orjson.loads(_unb64(payload))
            principal = Principal(key_id=str(claims["k"]), org_id=str(claims["o"]), agent_id=claims["a"])
            expires = int(claims["e"])
            model = claims.get("m")
        except (ValueError, KeyError, TypeError):
            return None
        return TokenClaims(principal, expires, model if isinstance(model, str) else None)

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode("ascii", "replace"), hashlib.sha256).digest())
