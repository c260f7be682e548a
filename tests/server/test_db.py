"""The embedded SQLite store is private to its owner: directory 0700, database files 0600."""

from __future__ import annotations

import stat
from pathlib import Path

from sqlalchemy import text

from server.db import make_engine


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_data_dir_and_the_sqlite_files_are_created_private(tmp_path: Path) -> None:
    data = tmp_path / "var"
    db = data / "patchbay.db"
    engine = make_engine(f"sqlite+aiosqlite:///{db}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
            # While the connection is open, WAL mode keeps both side files on disk.
            assert (mode(Path(f"{db}-wal")), mode(Path(f"{db}-shm"))) == (0o600, 0o600)
    finally:
        await engine.dispose()
    assert mode(data) == 0o700
    assert mode(db) == 0o600
