"""The credential vault: envelope-encrypted provider keys that decrypt only at the moment of use.

See docs/security.md for the key hierarchy and the operator's procedures.
"""

from providers.vault.audit import DecryptAuditWriter
from providers.vault.credential import VaultCredential
from providers.vault.errors import (
    DecryptError,
    KeyConfigError,
    MissingKeyError,
    RotationIncomplete,
    SecretExists,
    SecretNotFound,
    VaultError,
    WrongKeyError,
)
from providers.vault.keyring import (
    FileKeys,
    Keyring,
    KeySource,
    StaticKeys,
    load_key_source,
    parse_master_keys,
)
from providers.vault.rotation import RotationProgress, RotationResult
from providers.vault.secret import REDACTED, Secret, fingerprint
from providers.vault.store import Vault, VaultRecordInfo, VaultStatus

__all__ = [
    "REDACTED",
    "DecryptAuditWriter",
    "DecryptError",
    "FileKeys",
    "KeyConfigError",
    "KeySource",
    "Keyring",
    "MissingKeyError",
    "RotationIncomplete",
    "RotationProgress",
    "RotationResult",
    "Secret",
    "SecretExists",
    "SecretNotFound",
    "StaticKeys",
    "Vault",
    "VaultCredential",
    "VaultError",
    "VaultRecordInfo",
    "VaultStatus",
    "WrongKeyError",
    "fingerprint",
    "load_key_source",
    "parse_master_keys",
]
