"""The vault's tables: sealed secrets, and the progress of master key rotations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from foundation.db import Base, UTCDateTime, new_id, utcnow


class VaultSecret(Base):
    """One sealed secret. Holds ciphertext, a wrapped data key and a fingerprint; never plaintext."""

    __tablename__ = "vault_secrets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("sec"))
    org_id: Mapped[str] = mapped_column(String(32), index=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    """The record the secret belongs to (a connection id); part of the associated data."""
    field: Mapped[str] = mapped_column(String(32))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    wrap_nonce: Mapped[bytes] = mapped_column(LargeBinary)
    key_version: Mapped[str] = mapped_column(String(16), index=True)
    fingerprint: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    """When the plaintext was last set (created or replaced)."""
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When the data key was last re-wrapped under a new master key version."""

    __table_args__ = (UniqueConstraint("org_id", "owner_id", "field", name="uq_vault_secrets_owner_field"),)

    def __repr__(self) -> str:
        return f"VaultSecret(id={self.id!r}, org_id={self.org_id!r}, field={self.field!r}, key_version={self.key_version!r})"


class VaultRotation(Base):
    """One run of re-wrapping toward `target_version`; the cursor makes a crashed run resumable."""

    __tablename__ = "vault_rotations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("rot"))
    target_version: Mapped[str] = mapped_column(String(16))
    cursor: Mapped[str] = mapped_column(String(32), default="")
    """The last record id processed in the current pass (ids are visited in order)."""
    rewrapped: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
