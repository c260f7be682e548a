"""Master key parsing, the key file, and reloading keys added by another process."""

from __future__ import annotations

import base64
import logging
import os
import stat
from pathlib import Path

import pytest

from providers.vault.crypto import Binding, open_envelope, seal
from providers.vault.errors import KeyConfigError, MissingKeyError
from providers.vault.keyring import (
    FileKeys,
    Keyring,
    StaticKeys,
    load_key_source,
    new_master_key,
    parse_master_keys,
    write_key_file,
)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


K1, K2 = os.urandom(32), os.urandom(32)


def test_versioned_list_first_is_current() -> None:
    ring = parse_master_keys(f"v2:{b64(K2)}, v1:{b64(K1)}", origin="PATCHBAY_MASTER_KEY")
    assert ring.versions == ("v2", "v1")
    assert ring.current().key == K2
    assert ring.find("v1") is not None and ring.find("v1").key == K1  # type: ignore[union-attr]
    assert ring.next_version() == "v3"


def test_bare_key_is_v1_and_file_format_allows_lines_and_comments() -> None:
    assert parse_master_keys(b64(K1), origin="x").versions == ("v1",)
    ring = parse_master_keys(f"# rotated 2026-11\nv3:{b64(K2)}\n\nv1:{b64(K1)}  # oldest\n", origin="file")
    assert ring.versions == ("v3", "v1")


_FRAGMENTS = (
    "holds no master key",
    "entry 2 has no version",
    "not of the form v1",
    "configured twice",
    "decodes to 16 bytes",
    "not valid base64",
)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "holds no master key"),
        (f"v1:{b64(K1)},{b64(K2)}", "entry 2 has no version"),
        (f"key1:{b64(K1)}", "not of the form v1"),
        (f"v1:{b64(K1)},v1:{b64(K2)}", "configured twice"),
        (f"v1:{b64(K1[:16])}", "decodes to 16 bytes"),
        (f"v1:{b64(K1)[:-2]}!!", "not valid base64"),
    ],
    ids=lambda value: value if value in _FRAGMENTS else "text",  # the keys are random: never in an id
)
def test_bad_configuration_names_the_problem_not_the_key(text: str, fragment: str) -> None:
    with pytest.raises(KeyConfigError) as err:
        parse_master_keys(text, origin="PATCHBAY_MASTER_KEY")
    message = str(err.value)
    assert fragment in message
    for material in (b64(K1), b64(K2), b64(K1[:16]), b64(K1)[:-2]):
        assert material not in message


def test_env_and_file_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigError, match="not both"):
        load_key_source(master_key=b64(K1), master_key_file=tmp_path / "k", data_dir=tmp_path)


def test_env_keys_are_static(tmp_path: Path) -> None:
    source = load_key_source(master_key=f"v1:{b64(K1)}", master_key_file=None, data_dir=tmp_path)
    assert isinstance(source, StaticKeys) and not source.writable
    with pytest.raises(MissingKeyError, match="v7"):
        source.get("v7")
    assert b64(K1) not in repr(source)
    assert not list(tmp_path.iterdir())  # no key file generated when a key is configured


def test_first_start_generates_a_0600_key_file_and_logs_only_its_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    source = load_key_source(master_key=None, master_key_file=None, data_dir=tmp_path / "data")
    path = tmp_path / "data" / "master.key"
    assert isinstance(source, FileKeys) and source.path == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert source.versions() == ("v1",)
    material = b64(source.current().key)
    assert material in path.read_text()
    logged = [(r.getMessage(), r.__dict__.get("fields")) for r in caplog.records]
    assert any(fields and fields.get("path") == str(path.resolve()) for _, fields in logged)
    assert material not in caplog.text and material not in repr(logged)
    # The second start reuses the file rather than generating another key.
    again = load_key_source(master_key=None, master_key_file=None, data_dir=tmp_path / "data")
    assert again.current().key == source.current().key


def test_read_only_callers_do_not_generate(tmp_path: Path) -> None:
    source = load_key_source(master_key=None, master_key_file=None, data_dir=tmp_path, create=False)
    assert source.versions() == ()
    assert not (tmp_path / "master.key").exists()
    with pytest.raises(KeyConfigError, match="no vault master key"):
        source.current()


def test_explicit_key_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigError, match="does not exist"):
        load_key_source(master_key=None, master_key_file=tmp_path / "nope.key", data_dir=tmp_path)


def test_loose_permissions_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "k"
    path.write_text(f"v1:{b64(K1)}\n")
    path.chmod(0o644)
    caplog.set_level(logging.WARNING)
    FileKeys(path)
    assert "chmod 600" in caplog.text


def test_a_version_added_by_another_process_is_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    rotator = load_key_source(master_key=None, master_key_file=None, data_dir=tmp_path)
    server = FileKeys(path)
    binding = Binding("org", "conn", "api_key")
    added = rotator.add_version()  # type: ignore[union-attr]
    assert added.version == "v2"
    assert rotator.versions() == ("v2", "v1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    envelope = seal(b"x", binding, added)
    # The server still writes under v1 until it refreshes, but reads a v2 record at once.
    assert server.current().version == "v1"
    assert open_envelope(envelope, binding, server.get("v2")) == b"x"
    server.refresh()
    assert server.current().version == "v2"
    with pytest.raises(MissingKeyError, match="v9"):
        server.get("v9")


def test_exclusive_write_never_clobbers_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    first = Keyring((new_master_key("v1"),))
    write_key_file(path, first, exclusive=True)
    with pytest.raises(FileExistsError):
        write_key_file(path, Keyring((new_master_key("v1"),)), exclusive=True)
    assert FileKeys(path).current().key == first.current().key
    assert [p.name for p in tmp_path.iterdir()] == ["master.key"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
