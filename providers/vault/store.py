"""The vault service: store, replace, delete and use sealed secrets; start-up key checks; status.

Writes (`put`, `replace`, `delete`) join the caller's session so a connection and its secret
change in one transaction, and they add their own audit rows to it. `credential` loads a
record and returns a `VaultCredential` that decrypts only when an adapter calls `reveal`;
decrypt audits go to the `AuditSink` (normally a `BufferedAuditWriter`). Rotation lives in
`providers.vault.rotation`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from foundation.audit import AuditEvent, AuditSink
from foundation.db import utcnow
from providers.vault.credential import VaultCredential
from providers.vault.crypto import Binding, Envelope, MasterKey, seal, unwrap_data_key
from providers.vault.errors import (
    DecryptError,
    KeyConfigError,
    MissingKeyError,
    SecretExists,
    SecretNotFound,
    WrongKeyError,
)
from providers.vault.keyring import KeySource, version_number
from providers.vault.rotation import RotationProgress, RotationResult, latest_rotation, rotate
from providers.vault.secret import Secret
from providers.vault.tables import VaultRotation, VaultSecret

_PROBES_PER_VERSION = 3


class SealedRecord(Protocol):
    """The columns of a vault record a credential is made of: `VaultSecret`, or a plain row
    read with others (`routing.rows.SecretRow`, the registry's read of an org)."""

    @property
    def id(self) -> str: ...
    @property
    def org_id(self) -> str: ...
    @property
    def owner_id(self) -> str: ...
    @property
    def field(self) -> str: ...
    @property
    def ciphertext(self) -> bytes: ...
    @property
    def nonce(self) -> bytes: ...
    @property
    def wrapped_key(self) -> bytes: ...
    @property
    def wrap_nonce(self) -> bytes: ...
    @property
    def key_version(self) -> str: ...
    @property
    def fingerprint(self) -> str: ...


R = TypeVar("R", bound=SealedRecord)


@dataclass(frozen=True, slots=True)
class VaultRecordInfo:
    """What the admin surfaces may show about a stored secret."""

    id: str
    fingerprint: str
    set_at: datetime
    key_version: str


@dataclass(frozen=True, slots=True)
class VaultStatus:
    current_version: str | None
    configured_versions: tuple[str, ...]
    records_by_version: dict[str, int]
    last_rotation: VaultRotation | None = field(default=None, compare=False)

    @property
    def pending(self) -> int:
        """Records not yet wrapped under the current key."""
        return sum(n for v, n in self.records_by_version.items() if v != self.current_version)

    @property
    def missing_versions(self) -> tuple[str, ...]:
        return tuple(v for v in self.records_by_version if v not in self.configured_versions)

    @property
    def removable_versions(self) -> tuple[str, ...]:
        """Configured old versions that no record uses: safe to delete from the configuration."""
        return tuple(
            v
            for v in self.configured_versions
            if v != self.current_version and not self.records_by_version.get(v)
        )

    def to_dict(self) -> dict[str, Any]:
        rot = self.last_rotation
        return {
            "current_version": self.current_version,
            "configured_versions": list(self.configured_versions),
            "records_by_version": dict(self.records_by_version),
            "pending": self.pending,
            "missing_versions": list(self.missing_versions),
            "removable_versions": list(self.removable_versions),
            "last_rotation": None
            if rot is None
            else {
                "target_version": rot.target_version,
                "rewrapped": rot.rewrapped,
                "started_at": rot.started_at.isoformat(),
                "finished_at": rot.finished_at.isoformat() if rot.finished_at else None,
            },
        }


class Vault:
    def __init__(self, keys: KeySource, sessions: async_sessionmaker[AsyncSession], audit: AuditSink) -> None:
        self.keys = keys
        self._sessions = sessions
        self._audit = audit

    async def put(
        self,
        session: AsyncSession,
        *,
        org_id: str,
        owner_id: str,
        field: str,
        plaintext: Secret,
        actor: str = "system",
    ) -> VaultRecordInfo:
        """Seal a new secret for (org, owner, field); `SecretExists` if it already has one."""
        existing = await session.scalar(
            select(VaultSecret.id).where(
                VaultSecret.org_id == org_id, VaultSecret.owner_id == owner_id, VaultSecret.field == field
            )
        )
        if existing is not None:
            raise SecretExists(
                f"{owner_id} already has a vault secret for {field} ({existing}); replace it instead"
            )
        envelope = await self._seal(plaintext, Binding(org_id, owner_id, field))
        now = utcnow()
        row = VaultSecret(
            org_id=org_id,
            owner_id=owner_id,
            field=field,
            fingerprint=plaintext.fingerprint,
            created_at=now,
            set_at=now,
        )
        _apply(row, envelope)
        session.add(row)
        await session.flush()
        session.add(_audit_row(row, actor, "secret.create"))
        return _info(row)

    async def replace(
        self,
        session: AsyncSession,
        *,
        secret_id: str,
        org_id: str,
        owner_id: str,
        field: str,
        plaintext: Secret,
        actor: str = "system",
    ) -> VaultRecordInfo:
        """Seal a new value (with a new data key) into the same record id."""
        row = await self._owned(session, secret_id, org_id, owner_id, field)
        _apply(row, await self._seal(plaintext, Binding(org_id, owner_id, field)))
        row.fingerprint = plaintext.fingerprint
        row.set_at = utcnow()
        row.rotated_at = None
        session.add(_audit_row(row, actor, "secret.replace"))
        await session.flush()
        return _info(row)

    async def delete(
        self, session: AsyncSession, *, secret_id: str, org_id: str, actor: str = "system"
    ) -> bool:
        row = await session.get(VaultSecret, secret_id)
        if row is None or row.org_id != org_id:
            return False
        session.add(_audit_row(row, actor, "secret.delete"))
        await session.delete(row)
        await session.flush()
        return True

    async def info(self, session: AsyncSession, *, secret_id: str, org_id: str) -> VaultRecordInfo:
        row = await session.get(VaultSecret, secret_id)
        if row is None or row.org_id != org_id:
            raise SecretNotFound(f"no vault secret {secret_id} in org {org_id}")
        return _info(row)

    async def credential(
        self,
        secret_id: str,
        *,
        org_id: str,
        owner_id: str,
        field: str,
        owner_type: str = "connection",
        actor: str = "system",
        session: AsyncSession | None = None,
    ) -> VaultCredential:
        """A credential over one record; nothing is decrypted until `reveal`."""
        if session is None:
            async with self._sessions() as own:
                row = await own.get(VaultSecret, secret_id)
        else:
            row = await session.get(VaultSecret, secret_id)
        return self.credential_of(
            row, secret_id, org_id=org_id, owner_id=owner_id, field=field, owner_type=owner_type, actor=actor
        )

    def credential_of(
        self,
        row: SealedRecord | None,
        secret_id: str,
        *,
        org_id: str,
        owner_id: str,
        field: str,
        owner_type: str = "connection",
        actor: str = "system",
    ) -> VaultCredential:
        """`credential` over a record the caller read already (None: there was none), so a
        loader that reads many records in one query makes no read per record."""
        row = _checked(row, secret_id, org_id, owner_id, field)
        return VaultCredential(
            secret_id=row.id,
            # The caller's view of the owner, not the row's: a row whose org or owner was
            # rewritten in the database still fails authentication.
            binding=Binding(org_id, owner_id, field),
            envelope=_envelope(row),
            fingerprint=row.fingerprint,
            keys=self.keys,
            audit=self._audit,
            owner_type=owner_type,
            actor=actor,
        )

    async def check_keys(self, session: AsyncSession) -> None:
        """Refuse to run when stored secrets need a key we lack or a key that is wrong.

        Raises `MissingKeyError` naming every absent version, or `WrongKeyError` when none of a
        few sampled records under a version can be unwrapped with the configured key of that name.
        Only data keys are unwrapped; no secret is decrypted.
        """
        await asyncio.to_thread(self.keys.refresh)
        versions = (await session.scalars(select(VaultSecret.key_version).distinct())).all()
        configured = set(self.keys.versions())
        missing = [v for v in versions if v not in configured]
        if missing:
            raise MissingKeyError(
                missing, detail=f"{self.keys.description} has {', '.join(sorted(configured)) or 'none'}"
            )
        for version in versions:
            master = self.keys.get(version)
            rows = (
                await session.scalars(
                    select(VaultSecret).where(VaultSecret.key_version == version).limit(_PROBES_PER_VERSION)
                )
            ).all()
            if not any(_opens(row, master) for row in rows):
                raise WrongKeyError(version, detail=f"from {self.keys.description}")

    async def status(self, session: AsyncSession) -> VaultStatus:
        result = await session.execute(
            select(VaultSecret.key_version, func.count()).group_by(VaultSecret.key_version)
        )
        counts = {version: int(n) for version, n in result.all()}
        ordered = dict(sorted(counts.items(), key=lambda kv: -_safe_number(kv[0])))
        configured = self.keys.versions()
        return VaultStatus(
            current_version=configured[0] if configured else None,
            configured_versions=configured,
            records_by_version=ordered,
            last_rotation=await latest_rotation(session),
        )

    async def rotate(
        self, *, batch_size: int = 100, progress: Callable[[RotationProgress], None] | None = None
    ) -> RotationResult:
        """Re-wrap every data key under the current master key; see `providers.vault.rotation.rotate`."""
        return await rotate(self._sessions, self.keys, batch_size=batch_size, progress=progress)

    async def _seal(self, plaintext: Secret, binding: Binding) -> Envelope:
        # A rotation in another process may have added a version to the key file; write under it.
        await asyncio.to_thread(self.keys.refresh)
        return seal(plaintext.expose().encode("utf-8"), binding, self.keys.current())

    async def _owned(
        self, session: AsyncSession, secret_id: str, org_id: str, owner_id: str, field: str
    ) -> VaultSecret:
        return _checked(await session.get(VaultSecret, secret_id), secret_id, org_id, owner_id, field)


def _checked(row: R | None, secret_id: str, org_id: str, owner_id: str, field: str) -> R:
    if (
        row is None
        or row.id != secret_id
        or (row.org_id, row.owner_id, row.field) != (org_id, owner_id, field)
    ):
        raise SecretNotFound(f"no vault secret {secret_id} for {owner_id} ({field}) in org {org_id}")
    return row


def _apply(row: VaultSecret, envelope: Envelope) -> None:
    row.ciphertext = envelope.ciphertext
    row.nonce = envelope.nonce
    row.wrapped_key = envelope.wrapped_key
    row.wrap_nonce = envelope.wrap_nonce
    row.key_version = envelope.key_version


def _envelope(row: SealedRecord) -> Envelope:
    return Envelope(row.ciphertext, row.nonce, row.wrapped_key, row.wrap_nonce, row.key_version)


def _opens(row: VaultSecret, master: MasterKey) -> bool:
    try:
        unwrap_data_key(_envelope(row), Binding(row.org_id, row.owner_id, row.field), master)
    except DecryptError:
        return False
    return True


def _info(row: VaultSecret) -> VaultRecordInfo:
    return VaultRecordInfo(
        id=row.id, fingerprint=row.fingerprint, set_at=row.set_at, key_version=row.key_version
    )


def _audit_row(row: VaultSecret, actor: str, action: str) -> AuditEvent:
    return AuditEvent(
        org_id=row.org_id,
        actor=actor,
        action=action,
        target_type="vault_secret",
        target_id=row.id,
        details={"owner_id": row.owner_id, "field": row.field, "fingerprint": row.fingerprint},
    )


def _safe_number(version: str) -> int:
    try:
        return version_number(version)
    except KeyConfigError:
        return 0
