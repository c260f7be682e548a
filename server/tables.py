"""Tables owned by the server surface: server-issued API keys (orgs live in `foundation.orgs`) and
phone calls handed from a draining worker to the next (`server.realtime.handover`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

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


class VoiceHandover(Base):
    """One call's conversation between a draining worker's stream and the call's next one."""

    __tablename__ = "voice_handovers"
    __table_args__ = (Index("ix_voice_handovers_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64))
    org_id: Mapped[str] = mapped_column(String(32), ForeignKey("orgs.id", ondelete="CASCADE"))
    key_id: Mapped[str] = mapped_column(String(32))
    agent_id: Mapped[str | None] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(255))
    parameters: Mapped[dict[str, str]] = mapped_column(JSON)
    """The stream's own parameters (instructions, voice), handed to the next stream as they are."""
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    """The conversation so far (`conversation_of`)."""
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
