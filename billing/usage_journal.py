"""Usage rows made durable before their response ends: one journal line per usage segment,
written into `usage_records` behind, and the journals of dead processes replayed.

`UsageJournal` is the serving recorder's file (`billing.usage.UsageRecorder.open_journal`):
`append` writes a segment as one line of this process's journal (`billing.journal`: one
`write(2)`, a few µs, in the page cache when it returns, so it outlives a `kill -9`). Around
each batch the recorder writes, `before_write` and `after_write` keep the file small, as the
settle journal's drain does: emptied once every line in it is written; under constant load
(never all written) replaced at `ROTATE_BYTES` and removed once its lines are written. A line
kept only in the journal (`spill`: the recorder's memory buffer was full while the database was
away) is written by the orphan replay: the file holding it is closed without removing it.

`replay_orphans` writes the journals no living process holds, `REPLAY_BATCH` rows a
transaction, then removes them (`billing.usage` turns a line back into its row). Every segment
carries its row id from the moment it is made, and rows are inserted with `ON CONFLICT (id) DO
NOTHING` (`foundation.buffered.insert_new`): a row written before the kill, or a journal
replayed twice, is written once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.journal import Journal, replay
from foundation.buffered import RowValues, insert_new

log = logging.getLogger("patchbay.billing")

ROTATE_BYTES = 4 << 20
"""A journal never all written (constant load) is replaced at this size."""
REPLAY_BATCH = 500
ORPHAN_EVERY = 10
"""Flushes (a second apart) between two replays of dead processes' journals while serving."""


class UsageJournal:
    """This process's usage journal, locked for as long as it is open."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._file = Journal(directory)
        self._spilled = False

    def append(self, segment: object, *, spill: bool = False) -> None:
        """Journal the segment (a dataclass; synchronous); `spill`: it is in no memory buffer, only here."""
        self._file.append(segment)
        self._spilled = self._spilled or spill

    def before_write(self) -> tuple[Journal, bool]:
        """Before the recorder takes its batch: the file holding the batch's lines, and whether it
        holds spilled lines. A file over `ROTATE_BYTES` is replaced: new lines go to a new one."""
        current, spilled = self._file, self._spilled
        if current.size > ROTATE_BYTES:
            self._file, self._spilled = Journal(self._dir), False
        return current, spilled

    async def sync(self, file: Journal) -> None:
        """fdatasync in a thread: the batch's lines survive a crash of the machine too."""
        await asyncio.to_thread(file.sync)

    def after_write(self, file: Journal, spilled: bool, *, written: bool, idle: bool) -> bool:
        """After the batch (`written`: it is in the database; `idle`: nothing is left in memory).
        A replaced file is removed, or kept for the orphan replay when the write failed or it
        holds spilled lines; the current file is emptied when every line in it is written, or,
        when it holds spilled lines, replaced and kept. True: a file was kept."""
        if file is not self._file:
            keep = not written or spilled
            file.close(remove=not keep)
            return keep
        if not written:
            return False
        if self._spilled:
            self._file, self._spilled = Journal(self._dir), False
            file.close(remove=False)
            return True
        if idle and file.size:
            file.truncate()
        return False

    def close(self, *, idle: bool) -> None:
        """Close the file; remove it when everything it holds is written."""
        self._file.close(remove=idle and not self._spilled)


async def write_rows(sessions: async_sessionmaker[AsyncSession], rows: Sequence[RowValues]) -> None:
    """Insert the rows, skipping any already written, `REPLAY_BATCH` a transaction."""
    for start in range(0, len(rows), REPLAY_BATCH):
        batch = rows[start : start + REPLAY_BATCH]
        async with sessions.begin() as session:
            await session.execute(insert_new(session, batch[0][0]), [values for _, values in batch])


async def replay_orphans(
    sessions: async_sessionmaker[AsyncSession],
    directory: Path,
    row_of: Callable[[Mapping[str, Any]], RowValues],
) -> int:
    """Write the usage journals no living process holds into the database (`row_of`: a line's
    row), then remove them; returns how many. A line that is no row (not this format) is
    skipped and counted."""
    skipped = 0

    async def write(lines: list[dict[str, Any]]) -> None:
        nonlocal skipped
        rows: list[RowValues] = []
        for line in lines:
            try:
                rows.append(row_of(line))
            except (KeyError, TypeError, ValueError):
                skipped += 1
        await write_rows(sessions, rows)

    replayed = await replay(directory, write)
    if skipped:
        log.warning("usage journal lines skipped", extra={"fields": {"count": skipped}})
    if replayed:
        log.info("usage journals of dead processes replayed", extra={"fields": {"count": replayed}})
    return replayed
