"""The orgs table, with the subscription tier every org has (`foundation.tiers`).

Every package keys its rows by org (`ForeignKey("orgs.id")`) and routing reads the tier, so the
table lives below them all rather than in the surface that creates orgs (`server/accounts.py`).
What a tier permits and costs is billing's business; here it is only a name.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, String, false
from sqlalchemy.orm import Mapped, mapped_column

from foundation.db import Base, UTCDateTime, new_id, utcnow
from foundation.tiers import Tier


class Org(Base):
    __tablename__ = "orgs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("org"))
    name: Mapped[str] = mapped_column(String(128), unique=True)
    tier: Mapped[str] = mapped_column(String(16), default=Tier.FREE.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    content_logging: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Keep prompts and completions in the request log (off by default; docs/security.md)."""
