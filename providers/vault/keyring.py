"""Master keys: parsing, the key file, versions, and reloading while the server runs.

Keys come from `PATCHBAY_MASTER_KEY` (`v2:<base64>,v1:<base64>`, first is current, or one bare
base64 key which is `v1`) or from a key file in the same format, one key per line. With neither
configured, the embedded default generates `DATA_DIR/master.key` (mode 0600) on first start.

A file-backed source reloads itself when a record names a version it does not know and before
every write, so `patchbay vault rotate` can add a version to the file while servers run.
The caller (the CLI or the app factory) passes the configured values in; nothing here reads
the environment.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import re
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from providers.vault.crypto import KEY_BYTES, MasterKey
from providers.vault.errors import KeyConfigError, MissingKeyError

log = logging.getLogger(__name__)

DEFAULT_KEY_FILENAME = "master.key"
_VERSION = re.compile(r"^v([1-9][0-9]{0,5})$")


@dataclass(frozen=True, slots=True)
class Keyring:
    """An immutable set of master key versions; the first is current (used for new writes)."""

    keys: tuple[MasterKey, ...]
    _by_version: dict[str, MasterKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_version = {k.version: k for k in self.keys}
        if len(by_version) != len(self.keys):
            raise KeyConfigError("a master key version is configured twice")
        object.__setattr__(self, "_by_version", by_version)

    @property
    def versions(self) -> tuple[str, ...]:
        return tuple(k.version for k in self.keys)

    def current(self) -> MasterKey:
        if not self.keys:
            raise KeyConfigError("no vault master key is configured")
        return self.keys[0]

    def find(self, version: str) -> MasterKey | None:
        return self._by_version.get(version)

    def next_version(self) -> str:
        return f"v{max((version_number(v) for v in self.versions), default=0) + 1}"


def version_number(version: str) -> int:
    m = _VERSION.match(version)
    if m is None:
        raise KeyConfigError(f"master key version {version!r} is not of the form v1, v2, …")
    return int(m.group(1))


def parse_master_keys(text: str, *, origin: str) -> Keyring:
    """Parse `v2:<b64>,v1:<b64>` (commas or newlines; `#` comments) or one bare base64 key.

    Errors name the origin and the entry's position or version, never its content.
    """
    entries = [e.strip() for line in text.splitlines() for e in line.split("#", 1)[0].split(",")]
    entries = [e for e in entries if e]
    if not entries:
        raise KeyConfigError(f"{origin} holds no master key")
    if len(entries) == 1 and ":" not in entries[0]:
        return Keyring((MasterKey("v1", _decode(entries[0], origin, "the key")),))
    keys: list[MasterKey] = []
    for i, entry in enumerate(entries, 1):
        version, sep, material = entry.partition(":")
        if not sep:
            raise KeyConfigError(f"{origin}: entry {i} has no version; write it as vN:<base64>")
        version = version.strip()
        version_number(version)
        keys.append(MasterKey(version, _decode(material.strip(), origin, f"key {version}")))
    return Keyring(tuple(keys))


def _decode(material: str, origin: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(material, validate=True)
    except (binascii.Error, ValueError):
        raise KeyConfigError(f"{origin}: {what} is not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise KeyConfigError(f"{origin}: {what} decodes to {len(raw)} bytes; expected {KEY_BYTES}")
    return raw


def new_master_key(version: str) -> MasterKey:
    return MasterKey(version, os.urandom(KEY_BYTES))


def format_keyring(keyring: Keyring) -> str:
    return "".join(f"{k.version}:{base64.b64encode(k.key).decode()}\n" for k in keyring.keys)


def write_key_file(path: Path, keyring: Keyring, *, exclusive: bool = False) -> None:
    """Write atomically with mode 0600: a temp file in the same directory, fsync, rename.

    With `exclusive`, fail with `FileExistsError` if `path` exists (first-start generation must
    never clobber a key another process just wrote).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(format_keyring(keyring))
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            _link_exclusive(tmp, path)
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _link_exclusive(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)  # atomic, and fails rather than replacing an existing file
    except FileExistsError:
        raise
    except OSError:
        # Filesystems without hard links: create the target exclusively and copy into it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(tmp.read_bytes())
            fh.flush()
            os.fsync(fh.fileno())


def _fsync_dir(directory: Path) -> None:
    # Make the rename itself durable; not every platform lets a directory be opened.
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class KeySource(Protocol):
    """Where the vault gets master keys; `get` raises `MissingKeyError` for an unknown version."""

    description: str
    writable: bool

    def current(self) -> MasterKey: ...

    def get(self, version: str) -> MasterKey: ...

    def versions(self) -> tuple[str, ...]: ...

    def refresh(self) -> None:
        """Pick up keys added since loading (blocking I/O: call it off the event loop)."""
        ...


class StaticKeys:
    """Keys given as a value (the environment variable); they change only on restart."""

    writable = False

    def __init__(self, keyring: Keyring, description: str = "PATCHBAY_MASTER_KEY") -> None:
        self._keyring = keyring
        self.description = description

    def current(self) -> MasterKey:
        return self._keyring.current()

    def get(self, version: str) -> MasterKey:
        key = self._keyring.find(version)
        if key is None:
            raise MissingKeyError(
                [version], detail=f"configured: {', '.join(self._keyring.versions) or 'none'}"
            )
        return key

    def versions(self) -> tuple[str, ...]:
        return self._keyring.versions

    def refresh(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"StaticKeys(versions={self._keyring.versions!r})"


class FileKeys:
    """Keys in a file that `add_version` (the rotate command) may extend while servers run."""

    writable = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"key file {path}"
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._keyring = Keyring(())
        self._load()

    def _load(self) -> None:
        try:
            st = self.path.stat()
            text = self.path.read_text(encoding="ascii")
        except FileNotFoundError:
            raise KeyConfigError(f"the vault key file {self.path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyConfigError(
                f"cannot read the vault key file {self.path}: {type(exc).__name__}"
            ) from None
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning(
                "vault key file is readable by group or others; chmod 600 it",
                extra={"fields": {"path": str(self.path), "mode": oct(stat.S_IMODE(st.st_mode))}},
            )
        self._keyring = parse_master_keys(text, origin=self.description)
        self._stamp = (st.st_mtime_ns, st.st_size)

    def current(self) -> MasterKey:
        return self._keyring.current()

    def get(self, version: str) -> MasterKey:
        key = self._keyring.find(version)
        if key is None:
            # A version we do not know may have been added by a rotation in another process.
            with self._lock:
                self._load()
            key = self._keyring.find(version)
        if key is None:
            raise MissingKeyError([version], detail=f"{self.description} has {', '.join(self.versions())}")
        return key

    def versions(self) -> tuple[str, ...]:
        return self._keyring.versions

    def refresh(self) -> None:
        try:
            st = self.path.stat()
        except OSError:
            return  # keep serving from the loaded keys; start-up already proved the file
        if (st.st_mtime_ns, st.st_size) != self._stamp:
            with self._lock:
                self._load()

    def add_version(self) -> MasterKey:
        """Generate the next version, make it current, keep the old ones; returns the new key."""
        with self._lock:
            self._load()
            key = new_master_key(self._keyring.next_version())
            write_key_file(self.path, Keyring((key, *self._keyring.keys)))
            self._load()
        log.info(
            "added a vault master key version",
            extra={"fields": {"version": key.version, "path": str(self.path)}},
        )
        return key

    def __repr__(self) -> str:
        return f"FileKeys(path={str(self.path)!r}, versions={self.versions()!r})"


def load_key_source(
    *,
    master_key: str | None,
    master_key_file: Path | None,
    data_dir: Path,
    create: bool = True,
) -> StaticKeys | FileKeys:
    """Resolve the configured keys: the variable, else the named file, else `DATA_DIR/master.key`.

    With `create` (the server), a missing default file is generated with mode 0600 and its path
    (never its content) is logged. Without it (read-only CLI commands) a missing default file
    yields an empty keyring, so `status` can still report what the database needs.
    """
    if master_key is not None and master_key_file is not None:
        raise KeyConfigError("set PATCHBAY_MASTER_KEY or PATCHBAY_MASTER_KEY_FILE, not both")
    if master_key is not None:
        return StaticKeys(parse_master_keys(master_key, origin="PATCHBAY_MASTER_KEY"))
    if master_key_file is not None:
        return FileKeys(master_key_file)
    path = data_dir / DEFAULT_KEY_FILENAME
    if not path.exists():
        if not create:
            return StaticKeys(Keyring(()), description=f"no key file at {path}")
        try:
            write_key_file(path, Keyring((new_master_key("v1"),)), exclusive=True)
            log.warning(
                "generated a new vault master key file; back it up, secrets cannot be recovered without it",
                extra={"fields": {"path": str(path.resolve())}},
            )
        except FileExistsError:
            pass  # another process generated it first; use theirs
    return FileKeys(path)
