"""After start-up, the API keys used most recently and their orgs are loaded in the background,
so the first request after a restart usually finds its key and its org held.

An org's first request in a process pays for reading its key and its rows and building its
snapshot (docs/performance.md, Many tenants); a restart makes every org's next request a first
one. `Prewarm` reads the `limit` live keys with the latest `last_used_at` (one statement), holds
them in the key cache, then loads their orgs `batch` at a time through `Registry.preload`, one
read per batch. It runs at low priority and bounded:
- it starts once the process serves (readiness does not wait for it) and stops with the process;
- after each batch it sleeps at least as long as the batch took, so it holds the event loop at
  most half the time while it lasts, in slices of a few milliseconds;
- it never evicts: it stops when either cache is full (at most the smaller of `limit` and the
  cache sizes are loaded), and counts no cache lookup;
- a request for an org being loaded waits for that load (single flight, as always); requests for
  other orgs never wait for it: their loads are their own (`BatchedReads`), not in its batches;
- a failure is logged once and ends it: the orgs simply load on their first request.
`PATCHBAY_ORG_PREWARM` sets `limit` (0: off).
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from foundation.background import BackgroundTask
from routing.registry import Registry
from server.accounts import recently_used_keys
from server.v1.auth import ApiKeyCache

log = logging.getLogger("patchbay.prewarm")

DEFAULT_LIMIT = 1000
"""Keys (and so at most as many orgs) loaded after start-up (`PATCHBAY_ORG_PREWARM`)."""
_BATCH = 4
"""Orgs per read: a few milliseconds of the event loop at a time."""


class Prewarm:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        api_keys: ApiKeyCache,
        registry: Registry,
        *,
        limit: int = DEFAULT_LIMIT,
        batch: int = _BATCH,
    ) -> None:
        self._sessions = sessions
        self._api_keys = api_keys
        self._registry = registry
        self._limit = limit
        self._batch = batch
        self._background = BackgroundTask("org prewarm", self._run)
        self.keys = 0
        """Keys it put in the key cache."""
        self.orgs = 0
        """Orgs it asked the registry to load (those held or loading already are skipped there)."""

    def start(self) -> None:
        if self._limit > 0:
            self._background.start()

    async def aclose(self) -> None:
        await self._background.stop()

    async def _run(self) -> None:
        began = time.monotonic()
        try:
            await self.run()
        except Exception as exc:
            log.warning("prewarm stopped", extra={"fields": {"error": type(exc).__name__, "orgs": self.orgs}})
            return
        log.info(
            "prewarm done",
            extra={
                "fields": {
                    "keys": self.keys,
                    "orgs": self.orgs,
                    "seconds": round(time.monotonic() - began, 2),
                }
            },
        )

    async def run(self) -> None:
        """Load the keys and orgs (what the background task does; tests call it directly)."""
        async with self._sessions() as session:
            found = await recently_used_keys(session, self._limit)
        orgs: dict[str, None] = {}
        for digest, principal in found:
            if not self._api_keys.prime(digest, principal):
                break
            self.keys += 1
            orgs[principal.org_id] = None
        pending = list(orgs)
        for start in range(0, len(pending), self._batch):
            if self._registry.full:
                return
            began = time.monotonic()
            ids = pending[start : start + self._batch]
            await self._registry.preload(ids, ahead=True)
            self.orgs += len(ids)
            # At most half the loop's time: requests come first.
            await asyncio.sleep(max(0.001, time.monotonic() - began))
