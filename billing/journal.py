"""A process's append-only journal: what makes a settle, or a usage row, durable before its
response ends, without a database round trip.

Each serving process writes one file per directory, `<dir>/<uuid>.log`, held with an exclusive
`flock` for as long as the process lives; each line is one JSON object (a leased settle, see
`billing.lease`, in `journal/`; a usage segment, see `billing.usage_journal`, in
`usage-journal/`). `append` is one `write(2)` to the file opened `O_APPEND`, synchronous and a
few µs: once it returns, the line is in the kernel's page cache, so it outlives a `kill -9` of
the process (not a crash of the machine). `sync` (`fdatasync`) makes the lines written so far
survive a machine crash too; the writer calls it, off the request path, before each batch it
drains into the database. When every line written has been drained, the caller `truncate`s
the file; under constant load (never all drained) it starts a new journal and `close`s the old
one, removing it, once the lines that old one holds are in the database. So files stay small.

A journal left by a dead process is found by `orphans`: a `.log` file whose lock can be taken
belongs to no living process (a lock goes with its process, whatever killed it). The caller
replays its lines (idempotently: they carry the ledger's keys, or the usage rows' ids) and then
`remove`s it. A new journal is created under a `.tmp` name, locked, and only then renamed to
`.log`, so a scan never takes the lock of a journal about to be used.
"""

from __future__ import annotations

import fcntl
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("patchbay.billing")


class Journal:
    """This process's journal file, locked for as long as it is open."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex
        temporary = directory / f"{name}.tmp"
        self._fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.path = directory / f"{name}.log"
        os.rename(temporary, self.path)
        self.size = 0
        """Bytes written since the file was last emptied."""

    def append(self, line: object) -> None:
        """Write one line, anything orjson serializes (synchronous: in the page cache when this returns)."""
        data = orjson.dumps(line) + b"\n"
        written = os.write(self._fd, data)
        if written != len(data):  # a regular file takes a small write whole, or raises (disk full)
            raise OSError(f"short write to the journal {self.path}")
        self.size += written

    def sync(self) -> None:
        """fdatasync: the lines written so far survive a crash of the machine (blocking; a thread)."""
        os.fdatasync(self._fd)

    def truncate(self) -> None:
        """Empty the file: every line written is in the database (appends go on from its start)."""
        os.ftruncate(self._fd, 0)
        self.size = 0

    def close(self, *, remove: bool) -> None:
        """Close (and delete, when everything written is in the database) the file; its lock goes with it."""
        if remove:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)


@dataclass
class Orphan:
    """A dead process's journal, locked by this process until `remove` or `close`."""

    path: Path
    lines: list[dict[str, Any]]
    fd: int

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.close()

    def close(self) -> None:
        os.close(self.fd)


def orphans(directory: Path) -> Iterator[Orphan]:
    """The journals in `directory` that no living process holds (a lock that can be taken), each
    locked while the caller replays it. A line that does not parse (torn by a machine crash while
    it was written, so never acknowledged) is skipped."""
    if not directory.is_dir():
        return
    for path in sorted(directory.glob("*.log")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # another process replayed and removed it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # a living process's journal
        with os.fdopen(os.dup(fd), "rb") as file:
            raw = file.read()
        yield Orphan(path, list(_parse(path, raw)), fd)


async def replay(directory: Path, write: Callable[[list[dict[str, Any]]], Awaitable[object]]) -> int:
    """Hand each orphan's lines to `write` (which must be idempotent), then remove it; on a
    failure it is closed, left for the next replay, and the error propagates. Returns how many
    were replayed."""
    replayed = 0
    for orphan in orphans(directory):
        try:
            await write(orphan.lines)
        except BaseException:
            orphan.close()
            raise
        orphan.remove()
        replayed += 1
    return replayed


def _parse(path: Path, raw: bytes) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(raw.splitlines(), 1):
        try:
            parsed = orjson.loads(line)
        except orjson.JSONDecodeError:
            log.warning("torn journal line skipped", extra={"fields": {"file": path.name, "line": number}})
            continue
        if isinstance(parsed, dict):
            yield parsed
