"""The credential a connection row calls with, and what identifies its key, without decrypting.

`credential_of` builds it from rows already read (the registry reads a whole org's connections
and vault records in one query); `connection_credential` reads the vault record itself (the
verification probes, one connection at a time). A `VaultCredential` holds only the sealed
envelope and decrypts at `reveal`, so caching one keeps no plaintext.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from providers.credentials import Credential, NoCredential
from providers.vault.errors import VaultError
from providers.vault.store import SealedRecord, Vault
from providers.vault.tables import VaultSecret
from routing.connections import KEY_FIELD
from routing.env_reference import ALLOW_SETTING, is_reserved
from routing.model import ConnectionStatus
from routing.platform import scope_of
from routing.rows import ConnectionRecord
from routing.tables import Connection

log = logging.getLogger("patchbay.routing")

KeyVersion = tuple[str, str | None, str | None, datetime | None, str | None]
"""(connection id, vault record id, key fingerprint, when the key was set, environment variable)."""


class EnvReferenceCredential:
    """A key the operator keeps in the server's environment; the name is stored, never the value."""

    __slots__ = ("_environ", "_name")

    def __init__(self, name: str, environ: Mapping[str, str]) -> None:
        self._name = name
        self._environ = environ

    @property
    def fingerprint(self) -> str:
        return f"env:{self._name}"

    def reveal(self, purpose: str) -> str:
        return self._environ.get(self._name, "")

    def __repr__(self) -> str:
        return f"EnvReferenceCredential({self._name!r})"


def key_version(row: ConnectionRecord) -> KeyVersion:
    """What identifies the key a connection calls with, without decrypting it.

    Every key write (`Connections.create`, `replace_key`, the legacy import) sets `key_set_at`,
    so a key replaced by one with the same fingerprint still counts as new; the connection id
    tells a profile deleted and created again apart. Re-wrapping under a new master key (vault
    rotation) touches none of these: the key itself is unchanged.
    """
    return (row.id, row.secret_id, row.key_fingerprint, row.key_set_at, row.env_reference)


def needs_vault(row: ConnectionRecord) -> bool:
    """Whether the connection's credential is a vault record (active, no environment reference)."""
    return row.status == ConnectionStatus.ACTIVE.value and not row.env_reference and row.secret_id is not None


async def connection_credential(
    session: AsyncSession, vault: Vault, row: Connection, environ: Mapping[str, str]
) -> Credential:
    """The credential a connection calls with, reading its vault record (see `credential_of`)."""
    secret = await session.get(VaultSecret, row.secret_id) if needs_vault(row) else None
    return credential_of(vault, row, secret, environ)


def credential_of(
    vault: Vault, row: ConnectionRecord, secret: SealedRecord | None, environ: Mapping[str, str]
) -> Credential:
    """The credential a connection calls with: its vault key (`secret`, the record its
    `secret_id` names, read by the caller), its environment reference, or none.

    Inactive connections get none. A key the vault cannot open yields none too (and an error
    line for the operator): the upstream then refuses the call and routing falls back.
    """
    if row.status != ConnectionStatus.ACTIVE.value:
        return NoCredential()
    if row.env_reference:
        # `environ` holds only allowlisted names (`allowed_environ`); checking again here keeps a
        # row saved before the allowlist, or a caller passing the raw environment, from leaking.
        if is_reserved(row.env_reference) or row.env_reference not in environ:
            log.error(
                "connection environment reference refused",
                extra={"fields": {"org_id": row.org_id, "profile": row.profile_id, "setting": ALLOW_SETTING}},
            )
            return NoCredential()
        return EnvReferenceCredential(row.env_reference, environ)
    if row.secret_id is None:
        return NoCredential()
    try:
        return vault.credential_of(
            secret, row.secret_id, org_id=scope_of(row.org_id), owner_id=row.id, field=KEY_FIELD
        )
    except VaultError as exc:
        log.error(
            "connection key unavailable",
            extra={"fields": {"org_id": row.org_id, "profile": row.profile_id, "error": type(exc).__name__}},
        )
        return NoCredential()
