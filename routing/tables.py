"""Tables owned by routing: an org's AI settings, its connections (auth profiles) and agents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from foundation.db import Base, UTCDateTime, new_id, utcnow


class OrgAISettings(Base):
    """One row per org: default model, allowlist and the org-level routing matrix."""

    __tablename__ = "org_ai_settings"

    org_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("orgs.id", ondelete="CASCADE"), primary_key=True
    )
    default_model: Mapped[str | None] = mapped_column(String(255))
    allowed_models: Mapped[list[str] | None] = mapped_column(JSON)
    """Model refs the org permits; None means no allowlist."""
    routing: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)
    """Task intent -> ordered chain of model refs (primary, then fallbacks)."""
    profile_order_explicit: Mapped[list[str] | None] = mapped_column(JSON)
    """Providers whose profile order the org set by hand; the others rotate by least recent use."""
    byok_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Connection(Base):
    """A connection to a provider: one auth profile, id `provider:name` within its owner.

    Its owner is an org, or the operator when `org_id` is NULL: a platform connection, which
    every org may route to as its tier allows, billed `platform` (docs/routing.md#platform-connections).
    """

    __tablename__ = "connections"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("conn"))
    org_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("orgs.id", ondelete="CASCADE"), index=True
    )
    """The owning org; NULL for a platform (operator-owned) connection."""
    provider: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64))
    base_url: Mapped[str | None] = mapped_column(String(512))
    position: Mapped[int] = mapped_column(Integer, default=0)
    """Explicit order among the org's connections for one provider (lower first)."""
    status: Mapped[str] = mapped_column(String(16), default="active")
    """active | disabled | revoked"""
    credential_kind: Mapped[str] = mapped_column(String(16))
    credential_source: Mapped[str] = mapped_column(String(32))
    secret_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("vault_secrets.id", ondelete="SET NULL")
    )
    """The vault record holding the key; never the key itself."""
    env_reference: Mapped[str | None] = mapped_column(String(128))
    """Name of an environment variable holding the key (operator-managed connections)."""
    key_fingerprint: Mapped[str | None] = mapped_column(String(32))
    key_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    models: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    """Declared models (private endpoints) with their capabilities: [{"id":..., "capabilities":[...]}]."""
    health_status: Mapped[str | None] = mapped_column(String(16))
    health_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    health_latency_ms: Mapped[int | None] = mapped_column(Integer)
    health_error_class: Mapped[str | None] = mapped_column(String(32))
    health_models: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("org_id", "provider", "name", name="uq_connections_org_profile"),
        # The constraint above treats NULL org ids as distinct: platform profiles need their own.
        Index(
            "uq_connections_platform_profile",
            "provider",
            "name",
            unique=True,
            sqlite_where=text("org_id IS NULL"),
            postgresql_where=text("org_id IS NULL"),
        ),
    )

    @property
    def profile_id(self) -> str:
        return f"{self.provider}:{self.name}"

    @property
    def is_platform(self) -> bool:
        return self.org_id is None


class Agent(Base):
    """A named agent with its own model defaults and per-intent routing overrides."""

    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("agt"))
    org_id: Mapped[str] = mapped_column(String(32), ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    default_model: Mapped[str | None] = mapped_column(String(255))
    chains: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)
    """Task intent -> ordered model refs; overrides the org's matrix for that intent."""
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_agents_org_name"),)
