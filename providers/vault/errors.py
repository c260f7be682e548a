"""The vault's typed errors.

Messages name records, orgs, fields and key versions so an operator can act on them; they
never carry key material, plaintext or ciphertext.
"""

from __future__ import annotations

from collections.abc import Iterable


class VaultError(Exception):
    """Base of every vault failure."""


class KeyConfigError(VaultError):
    """The configured master keys cannot be parsed or loaded."""


class MissingKeyError(VaultError):
    """Records are wrapped under master key versions that no configured key provides."""

    def __init__(self, versions: Iterable[str], *, detail: str = "") -> None:
        self.versions = tuple(sorted(set(versions)))
        names = ", ".join(self.versions)
        message = (
            f"the vault holds secrets under master key version(s) {names}, but no configured key "
            f"provides them; add the missing key(s) to PATCHBAY_MASTER_KEY or the key file"
        )
        super().__init__(message + (f" ({detail})" if detail else ""))


class WrongKeyError(VaultError):
    """A configured master key has the right version name but cannot open the records under it."""

    def __init__(self, version: str, *, detail: str = "") -> None:
        self.version = version
        message = (
            f"master key {version} does not open the vault records wrapped under {version}: "
            f"the configured key material is wrong; restore the backed-up key for {version}"
        )
        super().__init__(message + (f" ({detail})" if detail else ""))


class DecryptError(VaultError):
    """Authentication failed: the record was tampered with, moved to another owner, or the key is wrong."""


class SecretNotFound(VaultError):
    """No record with that id belongs to the given org, owner and field."""


class SecretExists(VaultError):
    """The owner already has a secret in that field; replace it instead."""


class RotationIncomplete(VaultError):
    """Rotation finished its passes but some records could not be re-wrapped."""

    def __init__(self, target_version: str, failed_ids: Iterable[str]) -> None:
        self.target_version = target_version
        self.failed_ids = tuple(failed_ids)
        shown = ", ".join(self.failed_ids[:10])
        more = f" and {len(self.failed_ids) - 10} more" if len(self.failed_ids) > 10 else ""
        super().__init__(
            f"{len(self.failed_ids)} record(s) could not be re-wrapped to {target_version} "
            f"(their data key failed authentication): {shown}{more}"
        )
