"""The long-lived objects one server process holds, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from server.db import Database, head_revision
from server.settings import Settings


@dataclass
class Services:
    settings: Settings
    db: Database
    expected_revision: str = field(default_factory=head_revision)
    extras: dict[str, Any] = field(default_factory=dict)

    async def aclose(self) -> None:
        await self.db.dispose()
