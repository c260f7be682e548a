"""The scheduled health probe: the cheap verification probes, per connection, in the background.

Off unless `PATCHBAY_HEALTH_PROBE_INTERVAL` is set (seconds). Every interval it verifies at most
`batch` connections, the least recently checked first, with test_auth and list_models only (no
generation, so it costs no tokens), and stores the outcome as each connection's health (what
the Connections page shows). Platform connections are probed only when
`PATCHBAY_HEALTH_PROBE_PLATFORM` is on: their keys are the operator's. It never runs on the
request path and never touches cooldowns: a failed probe is shown, not acted on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from foundation.background import BackgroundTask
from providers.credentials import Credential
from routing.model import ConnectionStatus
from routing.tables import Connection
from routing.verify import VerifyTools, verify

log = logging.getLogger("patchbay.routing")

CredentialFor = Callable[[AsyncSession, Connection], Awaitable[Credential]]


class HealthProbe:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        credential_for: CredentialFor,
        tools: Callable[[], VerifyTools],
        *,
        interval: float,
        include_platform: bool = False,
        batch: int = 20,
    ) -> None:
        self._sessions = sessions
        self._credential_for = credential_for
        self._tools = tools
        self.interval = interval
        self.include_platform = include_platform
        self.batch = batch
        self._task = BackgroundTask("health-probe", self._loop)

    async def probe_once(self) -> list[str]:
        """Verify the next batch; returns the profile ids probed, in order."""
        probed: list[str] = []
        async with self._sessions() as session:
            query = select(Connection).where(Connection.status == ConnectionStatus.ACTIVE.value)
            if not self.include_platform:
                query = query.where(Connection.org_id.is_not(None))
            # Never checked first, then the oldest check (NULLs sort first on both backends this way).
            query = query.order_by(
                Connection.health_checked_at.is_not(None), Connection.health_checked_at, Connection.id
            )
            rows = list(await session.scalars(query.limit(self.batch)))
            tools = self._tools()
            for row in rows:
                credential = await self._credential_for(session, row)
                await verify(row, credential, tools, text=False)
                probed.append(row.profile_id)
            await session.commit()
        return probed

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                probed = await self.probe_once()
            except Exception as exc:  # the next round tries again
                log.warning("health probe failed", extra={"fields": {"error": type(exc).__name__}})
                continue
            log.debug("health probe round", extra={"fields": {"probed": len(probed)}})

    def start(self) -> None:
        self._task.start()

    async def aclose(self) -> None:
        await self._task.stop()
