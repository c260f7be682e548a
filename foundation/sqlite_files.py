"""SQLite as the server opens it: the file a database URL names, and the pragmas every
connection runs with (the engine's pooled ones, `server.db`, and the buffered writers' own,
`foundation.sqlite_writes`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL

BUSY_TIMEOUT_MS = 5000
"""How long a connection waits for another's write lock before failing with `database is locked`."""


def apply_pragmas(dbapi_connection: Any, _record: Any = None) -> None:
    """Foreign keys on, the write-ahead log, and a wait for the write lock. Also a SQLAlchemy
    `connect` listener (hence `_record`)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL syncs the log at checkpoints, not at every commit: a commit survives the
    # process being killed (it is in the OS's cache), only an OS crash or power cut may lose the
    # last ones (never corrupting the file). See docs/billing.md#exactness-under-crashes-and-races.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()


def file_of(url: URL) -> str | None:
    """The file a SQLite URL opens, or None: another database, an in-memory one, or a URL with
    options (`?mode=...&uri=true`), whose meaning only the driver knows."""
    if url.get_backend_name() != "sqlite" or url.query or url.database in (None, "", ":memory:"):
        return None
    return url.database
