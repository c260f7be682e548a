"""Tables owned by the server surface: server-issued API keys (orgs live in `foundation.orgs`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from foundation.db import Base, UTCDateTime, new_id, utcnow


class ApiKey(Base):
    """A server-issued API key. Only a SHA-256 of the key is stored; the prefix finds the row."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("key"))
    org_id: Mapped[str] = mapped_column(String(32), ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("agents.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(24), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
