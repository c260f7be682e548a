"""Build the vault from settings, and adapt it to what the legacy importer needs."""

from __future__ import annotations

import hmac

from sqlalchemy.ext.asyncio import AsyncSession

from foundation.audit import AuditSink
from providers.vault.keyring import FileKeys, StaticKeys, load_key_source
from providers.vault.secret import Secret
from providers.vault.store import Vault
from server.db import Database
from server.settings import Settings


def key_source(settings: Settings, *, create: bool = True) -> StaticKeys | FileKeys:
    return load_key_source(
        master_key=settings.master_key.get_secret_value() if settings.master_key else None,
        master_key_file=settings.master_key_file,
        data_dir=settings.data_dir,
        create=create,
    )


def build_vault(settings: Settings, db: Database, audit: AuditSink) -> Vault:
    return Vault(key_source(settings), db.sessions, audit)


class VaultKeyStore:
    """The importers' `KeyStore` over the vault; `actor` is on every audit row (`legacy-import` for
    the predecessor's settings, the OpenClaw importer's own for its files)."""

    def __init__(self, vault: Vault, actor: str = "legacy-import") -> None:
        self.vault = vault
        self.actor = actor

    async def put(
        self, session: AsyncSession, *, org_id: str, owner_id: str, field: str, plaintext: str
    ) -> tuple[str, str]:
        info = await self.vault.put(
            session,
            org_id=org_id,
            owner_id=owner_id,
            field=field,
            plaintext=Secret(plaintext),
            actor=self.actor,
        )
        return info.id, info.fingerprint

    async def replace(
        self, session: AsyncSession, *, secret_id: str, org_id: str, owner_id: str, field: str, plaintext: str
    ) -> str:
        info = await self.vault.replace(
            session,
            secret_id=secret_id,
            org_id=org_id,
            owner_id=owner_id,
            field=field,
            plaintext=Secret(plaintext),
            actor=self.actor,
        )
        return info.fingerprint

    async def matches(
        self, session: AsyncSession, *, secret_id: str, org_id: str, owner_id: str, field: str, plaintext: str
    ) -> bool:
        credential = await self.vault.credential(
            secret_id, org_id=org_id, owner_id=owner_id, field=field, session=session, actor=self.actor
        )
        return hmac.compare_digest(credential.reveal(self.actor).encode(), plaintext.encode())
