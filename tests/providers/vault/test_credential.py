"""`VaultCredential.reveal`: the data key is unwrapped once, and a reveal still answers to the key
source and the record every time (no database: a sealed envelope and a key source in memory)."""

from __future__ import annotations

import dataclasses

import pytest

from foundation.audit import MemoryAudit
from providers.vault import crypto
from providers.vault.credential import VaultCredential
from providers.vault.crypto import Binding, MasterKey, seal
from providers.vault.errors import DecryptError, MissingKeyError
from providers.vault.keyring import new_master_key

BINDING = Binding("org_1", "conn_1", "api_key")
SECRET = "sk-test-CANARY-credential-reveal"


class Keys:
    """A key source whose keys a test can swap or take away between reveals."""

    def __init__(self, *keys: MasterKey) -> None:
        self.keys = {k.version: k for k in keys}

    def get(self, version: str) -> MasterKey:
        if version not in self.keys:
            raise MissingKeyError([version])
        return self.keys[version]


def credential(keys: Keys, audit: MemoryAudit, master: MasterKey) -> VaultCredential:
    return VaultCredential(
        secret_id="sec_1",
        binding=BINDING,
        envelope=seal(SECRET.encode(), BINDING, master),
        fingerprint="sk-test…veal",
        keys=keys,  # type: ignore[arg-type]
        audit=audit,
    )


def test_the_data_key_is_unwrapped_at_the_first_reveal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    master = new_master_key("v1")
    audit = MemoryAudit()
    cred = credential(Keys(master), audit, master)
    unwraps: list[str] = []
    real = crypto.unwrap_data_key

    def counting(*args: object) -> bytes:
        unwraps.append("unwrap")
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(crypto, "unwrap_data_key", counting)
    assert [cred.reveal("chat") for _ in range(3)] == [SECRET] * 3
    assert unwraps == ["unwrap"]
    # Every reveal is still audited.
    assert [e.action for e in audit.entries] == ["secret.decrypt"] * 3


def test_a_master_key_version_taken_away_fails_the_next_reveal() -> None:
    master = new_master_key("v1")
    keys, audit = Keys(master), MemoryAudit()
    cred = credential(keys, audit, master)
    assert cred.reveal("chat") == SECRET
    del keys.keys["v1"]
    with pytest.raises(MissingKeyError):
        cred.reveal("chat")
    assert audit.entries[-1].action == "secret.decrypt_failed"


def test_another_master_key_under_the_same_version_is_used_to_unwrap_again() -> None:
    master = new_master_key("v1")
    keys, audit = Keys(master), MemoryAudit()
    cred = credential(keys, audit, master)
    assert cred.reveal("chat") == SECRET
    keys.keys["v1"] = new_master_key("v1")  # other key bytes, same version
    with pytest.raises(DecryptError, match="sec_1"):
        cred.reveal("chat")
    keys.keys["v1"] = master
    assert cred.reveal("chat") == SECRET


def test_a_tampered_ciphertext_fails_even_with_the_data_key_unwrapped() -> None:
    master = new_master_key("v1")
    cred = credential(Keys(master), MemoryAudit(), master)
    assert cred.reveal("chat") == SECRET
    envelope = cred._envelope
    flipped = bytes([envelope.ciphertext[0] ^ 1]) + envelope.ciphertext[1:]
    cred._envelope = dataclasses.replace(envelope, ciphertext=flipped)
    with pytest.raises(DecryptError, match="could not be decrypted"):
        cred.reveal("chat")


def test_a_master_key_never_shows_its_cipher_or_bytes() -> None:
    master = new_master_key("v1")
    assert repr(master) == "MasterKey(version='v1')"
    assert master == MasterKey("v1", master.key) and hash(master) == hash(MasterKey("v1", master.key))
