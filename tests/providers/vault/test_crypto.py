"""The pure envelope functions: no database, no I/O."""

from __future__ import annotations

import dataclasses

import pytest

from providers.vault.crypto import Binding, Envelope, MasterKey, open_envelope, rewrap, seal
from providers.vault.errors import DecryptError
from providers.vault.keyring import new_master_key

BINDING = Binding("org_a", "conn_1", "api_key")


def _flip(data: bytes, index: int = 0) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def test_round_trip_and_fresh_randomness() -> None:
    master = new_master_key("v1")
    first = seal(b"sk-test-value", BINDING, master)
    second = seal(b"sk-test-value", BINDING, master)
    assert open_envelope(first, BINDING, master) == b"sk-test-value"
    assert first.key_version == "v1"
    # A fresh data key and nonces per secret: equal plaintexts never give equal records.
    assert first.ciphertext != second.ciphertext
    assert first.wrapped_key != second.wrapped_key
    assert b"sk-test-value" not in first.ciphertext + first.wrapped_key


@pytest.mark.parametrize("part", ["ciphertext", "nonce", "wrapped_key", "wrap_nonce"])
def test_a_flipped_byte_anywhere_is_a_typed_error(part: str) -> None:
    master = new_master_key("v1")
    envelope = seal(b"secret", BINDING, master)
    for index in (0, len(getattr(envelope, part)) - 1):
        tampered = dataclasses.replace(envelope, **{part: _flip(getattr(envelope, part), index)})
        with pytest.raises(DecryptError):
            open_envelope(tampered, BINDING, master)


@pytest.mark.parametrize(
    "other",
    [
        Binding("org_b", "conn_1", "api_key"),
        Binding("org_a", "conn_2", "api_key"),
        Binding("org_a", "conn_1", "token"),
    ],
)
def test_a_ciphertext_moved_to_another_org_record_or_field_fails(other: Binding) -> None:
    master = new_master_key("v1")
    envelope = seal(b"secret", BINDING, master)
    with pytest.raises(DecryptError):
        open_envelope(envelope, other, master)


def test_bindings_are_unambiguous() -> None:
    # Naive concatenation would make these equal; the length prefixes keep them apart.
    assert Binding("ab", "c", "f").associated_data(b"x") != Binding("a", "bc", "f").associated_data(b"x")


def test_wrong_master_key_and_relabelled_version_fail() -> None:
    master = new_master_key("v1")
    envelope = seal(b"secret", BINDING, master)
    with pytest.raises(DecryptError):
        open_envelope(envelope, BINDING, new_master_key("v1"))
    same_bytes_other_label = MasterKey("v2", master.key)
    with pytest.raises(DecryptError):
        open_envelope(dataclasses.replace(envelope, key_version="v2"), BINDING, same_bytes_other_label)


def test_rewrap_changes_only_the_wrapping() -> None:
    old, new = new_master_key("v1"), new_master_key("v2")
    envelope = seal(b"secret", BINDING, old)
    moved = rewrap(envelope, BINDING, old, new)
    assert (moved.ciphertext, moved.nonce) == (envelope.ciphertext, envelope.nonce)
    assert moved.key_version == "v2" and moved.wrapped_key != envelope.wrapped_key
    assert open_envelope(moved, BINDING, new) == b"secret"
    with pytest.raises(DecryptError):
        open_envelope(
            Envelope(moved.ciphertext, moved.nonce, moved.wrapped_key, moved.wrap_nonce, "v2"),
            BINDING,
            MasterKey("v2", old.key),
        )


def test_master_key_repr_hides_the_key() -> None:
    master = new_master_key("v1")
    assert master.key.hex() not in repr(master)
    assert repr(master.key) not in repr(master)
    envelope = seal(b"secret", BINDING, master)
    assert repr(envelope) == "Envelope(key_version='v1')"
