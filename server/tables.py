"""Tables owned by the server surface: server-issued API keys (orgs live in `foundation.orgs`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from foundation.db import Base, UTCDateTime, new_id, utcnow

_LIVE = text("revoked_at IS NULL")


class ApiKey(Base):
    """A server-issued API key. Only a SHA-256 of the key is stored; the prefix finds the row.

    Its scope is fixed at creation: the agent it is bound to, the models it may ask for
    (`models`, None for any) and when it stops working (`expires_at`, None for never).
    `last_used_at` is written behind the requests, at most once a minute per process.
    """

    __tablename__ = "api_keys"
    __table_args__ = (
        # Names tell an org's live keys apart; a revoked key's name may be used again. Keys made
        # before names were required have none (NULLs never collide).
        Index(
            "uq_api_keys_org_live_name",
            "org_id",
            "name",
            unique=True,
            sqlite_where=_LIVE,
            postgresql_where=_LIVE,
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("key"))
    org_id: Mapped[str] = mapped_column(String(32), ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("agents.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(24), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    models: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
