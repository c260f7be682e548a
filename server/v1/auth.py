"""Server API keys on the hot path: one database read per key, then memory.

The cache maps the SHA-256 of a presented key to its `Principal` (the plaintext is never kept).
A key is looked up in the database the first time a process sees it; after that it is served
from memory until something says it may have changed:
- an org's configuration changed (`drop_org`, wired to the registry's change listener), which
  also covers agent deletion;
- the background poll (`poll`, run by the registry every couple of seconds on its session)
  finds that a cached key was revoked or deleted, by whichever process.
Unknown keys are remembered briefly (bounded) so a client retrying a bad key cannot turn
every request into a database read.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts import API_KEY_PREFIX, Principal, authenticate_api_key, hash_api_key
from server.tables import ApiKey

_NEGATIVE_TTL = 5.0
_MAX_NEGATIVE = 10_000
_POLL_BATCH = 500


def bearer_token(authorization: bytes | None, x_api_key: bytes | None = None) -> str | None:
    """The key from `Authorization: Bearer ...` (OpenAI SDKs) or `x-api-key` (Anthropic SDKs)."""
    if authorization:
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    if x_api_key:
        return x_api_key.decode("latin-1").strip() or None
    return None


class ApiKeyCache:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._by_hash: dict[str, Principal] = {}
        self._unknown: dict[str, float] = {}
        self.lookups = 0
        """Database reads made so far (tests assert the hot path makes none)."""

    async def authenticate(self, presented: str) -> Principal | None:
        if not presented.startswith(API_KEY_PREFIX):
            return None
        digest = hash_api_key(presented)
        principal = self._by_hash.get(digest)
        if principal is not None:
            return principal
        seen = self._unknown.get(digest)
        if seen is not None and self._clock() - seen < _NEGATIVE_TTL:
            return None
        self.lookups += 1
        async with self._sessions() as session:
            principal = await authenticate_api_key(session, presented)
        if principal is None:
            if len(self._unknown) >= _MAX_NEGATIVE:
                self._unknown.clear()
            self._unknown[digest] = self._clock()
            return None
        self._unknown.pop(digest, None)
        self._by_hash[digest] = principal
        return principal

    def drop_org(self, org_id: str) -> None:
        for digest in [d for d, p in self._by_hash.items() if p.org_id == org_id]:
            self._by_hash.pop(digest, None)

    def drop_key(self, key_id: str) -> None:
        for digest in [d for d, p in self._by_hash.items() if p.key_id == key_id]:
            self._by_hash.pop(digest, None)

    async def poll(self, session: AsyncSession) -> None:
        """Forget cached keys that were revoked or deleted since they were cached."""
        ids = list({p.key_id for p in self._by_hash.values()})
        live: set[str] = set()
        for start in range(0, len(ids), _POLL_BATCH):
            rows = await session.scalars(
                select(ApiKey.id).where(
                    ApiKey.id.in_(ids[start : start + _POLL_BATCH]), ApiKey.revoked_at.is_(None)
                )
            )
            live.update(rows)
        for key_id in set(ids) - live:
            self.drop_key(key_id)
