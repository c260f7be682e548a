"""Pure envelope encryption: AES-256-GCM data keys wrapped by a versioned master key.

Each secret gets a fresh random 256-bit data key. The plaintext is sealed under the data key
with associated data naming its (org, owner, field), so a ciphertext copied to another org or
record fails authentication. The data key is sealed ("wrapped") under the master key with the
same binding plus the master key version. Rotation re-wraps the data key only; the secret's
ciphertext is never touched.

No I/O here: these functions take bytes and keys and return bytes, and are tested without a
database.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from providers.vault.errors import DecryptError

KEY_BYTES = 32
NONCE_BYTES = 12
_FORMAT = b"patchbay-vault/1"


@dataclass(frozen=True, slots=True)
class MasterKey:
    """One version of the master key. The key bytes never appear in a repr."""

    version: str
    key: bytes = field(repr=False)
    aead: AESGCM = field(init=False, repr=False, compare=False)
    """The key's cipher, made once: every reveal unwraps a data key with it (the key is in
    memory for the process's life either way)."""

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise ValueError(f"master key {self.version} must be {KEY_BYTES} bytes")
        object.__setattr__(self, "aead", AESGCM(self.key))


@dataclass(frozen=True, slots=True)
class Binding:
    """What a ciphertext belongs to; becomes the AEAD associated data."""

    org_id: str
    owner_id: str
    field: str

    def associated_data(self, purpose: bytes, key_version: str = "") -> bytes:
        return _associated_data(self, purpose, key_version)


@functools.lru_cache(maxsize=4096)
def _associated_data(binding: Binding, purpose: bytes, key_version: str) -> bytes:
    """Kept per binding: every reveal of a credential opens its envelope with the same two
    (1.5 µs each to build). Nothing secret: ids, a field name and a key version."""
    # Length-prefixed so no two different bindings can encode to the same bytes.
    parts = (
        _FORMAT,
        purpose,
        binding.org_id.encode(),
        binding.owner_id.encode(),
        binding.field.encode(),
        key_version.encode(),
    )
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A sealed secret as stored: ciphertext under the data key, data key under the master key."""

    ciphertext: bytes = field(repr=False)
    nonce: bytes = field(repr=False)
    wrapped_key: bytes = field(repr=False)
    wrap_nonce: bytes = field(repr=False)
    key_version: str


def seal(plaintext: bytes, binding: Binding, master: MasterKey) -> Envelope:
    data_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, binding.associated_data(b"secret"))
    wrap_nonce, wrapped = _wrap(data_key, binding, master)
    return Envelope(ciphertext, nonce, wrapped, wrap_nonce, master.version)


def open_envelope(envelope: Envelope, binding: Binding, master: MasterKey) -> bytes:
    """The plaintext, or `DecryptError` if any part was altered, moved or sealed under another key."""
    return open_with(data_key_cipher(envelope, binding, master), envelope, binding)


def data_key_cipher(envelope: Envelope, binding: Binding, master: MasterKey) -> AESGCM:
    """The envelope's data key, unwrapped and authenticated, as the cipher `open_with` takes."""
    return AESGCM(unwrap_data_key(envelope, binding, master))


def open_with(cipher: AESGCM, envelope: Envelope, binding: Binding) -> bytes:
    """The plaintext under an unwrapped data key, authenticated against `binding` again each time."""
    try:
        return cipher.decrypt(envelope.nonce, envelope.ciphertext, binding.associated_data(b"secret"))
    except (InvalidTag, ValueError):
        raise DecryptError("secret ciphertext failed authentication (tampered or moved)") from None


def rewrap(envelope: Envelope, binding: Binding, old: MasterKey, new: MasterKey) -> Envelope:
    """The same secret with its data key wrapped under `new`; the ciphertext is unchanged."""
    data_key = unwrap_data_key(envelope, binding, old)
    wrap_nonce, wrapped = _wrap(data_key, binding, new)
    return Envelope(envelope.ciphertext, envelope.nonce, wrapped, wrap_nonce, new.version)


def unwrap_data_key(envelope: Envelope, binding: Binding, master: MasterKey) -> bytes:
    if master.version != envelope.key_version:
        raise DecryptError(f"envelope is wrapped under {envelope.key_version}, not {master.version}")
    try:
        return master.aead.decrypt(
            envelope.wrap_nonce, envelope.wrapped_key, binding.associated_data(b"data-key", master.version)
        )
    except (InvalidTag, ValueError):
        raise DecryptError(
            f"data key failed authentication under master key {master.version} (tampered, moved or wrong key)"
        ) from None


def _wrap(data_key: bytes, binding: Binding, master: MasterKey) -> tuple[bytes, bytes]:
    nonce = os.urandom(NONCE_BYTES)
    wrapped = master.aead.encrypt(nonce, data_key, binding.associated_data(b"data-key", master.version))
    return nonce, wrapped
