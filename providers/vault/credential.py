"""`VaultCredential`: a sealed secret that decrypts only at the moment an adapter uses it."""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from foundation.audit import AuditEntry, AuditSink
from providers.vault.crypto import Binding, Envelope, MasterKey, data_key_cipher, open_with
from providers.vault.errors import DecryptError, VaultError
from providers.vault.keyring import KeySource


class VaultCredential:
    """Implements `providers.credentials.Credential` over one vault record.

    It holds the envelope (ciphertext and wrapped data key), never the plaintext. `reveal`
    decrypts, records an audit entry and returns the plaintext for the caller to put straight
    into an auth header. A failed decrypt raises `DecryptError` (or `MissingKeyError`) naming
    the record, and is audited too.

    The data key is unwrapped at the first reveal and kept as a cipher object for the next
    ones, as long as the master key that unwrapped it is still the one the key source returns
    for its version (asked on every reveal, so a version taken out of the keyring still fails).
    Unwrapping, with its cipher's set-up, was about 8 µs of a reveal's 20 on the chat path
    (docs/performance.md, "A data key unwrapped once").
    """

    __slots__ = (
        "_audit",
        "_binding",
        "_cipher",
        "_cipher_master",
        "_envelope",
        "_fingerprint",
        "_keys",
        "actor",
        "owner_type",
        "secret_id",
    )

    def __init__(
        self,
        *,
        secret_id: str,
        binding: Binding,
        envelope: Envelope,
        fingerprint: str,
        keys: KeySource,
        audit: AuditSink,
        owner_type: str = "connection",
        actor: str = "system",
    ) -> None:
        self.secret_id = secret_id
        self._binding = binding
        self._envelope = envelope
        self._fingerprint = fingerprint
        self._keys = keys
        self._audit = audit
        self.owner_type = owner_type
        self.actor = actor
        self._cipher: AESGCM | None = None
        self._cipher_master: MasterKey | None = None

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def key_version(self) -> str:
        """The master key version the data key is wrapped under (as loaded)."""
        return self._envelope.key_version

    @property
    def org_id(self) -> str:
        return self._binding.org_id

    @property
    def owner_id(self) -> str:
        return self._binding.owner_id

    def reveal(self, purpose: str) -> str:
        try:
            master = self._keys.get(self._envelope.key_version)
            cipher = self._cipher
            if cipher is None or self._cipher_master is not master:
                cipher = data_key_cipher(self._envelope, self._binding, master)
                self._cipher, self._cipher_master = cipher, master
            plaintext = open_with(cipher, self._envelope, self._binding).decode("utf-8")
        except VaultError as exc:
            self._record("secret.decrypt_failed", purpose, error=type(exc).__name__)
            if isinstance(exc, DecryptError):
                raise DecryptError(
                    f"vault secret {self.secret_id} ({self.owner_type} {self._binding.owner_id}, "
                    f"field {self._binding.field}) could not be decrypted: {exc}"
                ) from None
            raise
        except UnicodeDecodeError:
            self._record("secret.decrypt_failed", purpose, error="UnicodeDecodeError")
            raise DecryptError(f"vault secret {self.secret_id} is not valid UTF-8") from None
        self._record("secret.decrypt", purpose)
        return plaintext

    def _record(self, action: str, purpose: str, **extra: str) -> None:
        self._audit.record(
            AuditEntry(
                org_id=self._binding.org_id,
                actor=self.actor,
                action=action,
                target_type=self.owner_type,
                target_id=self._binding.owner_id,
                details={
                    "purpose": purpose,
                    "secret_id": self.secret_id,
                    "field": self._binding.field,
                    "key_version": self._envelope.key_version,
                    **extra,
                },
            )
        )

    def __repr__(self) -> str:
        return f"VaultCredential(secret_id={self.secret_id!r}, fingerprint={self._fingerprint!r})"
