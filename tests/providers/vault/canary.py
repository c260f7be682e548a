"""Canary scanning: prove a secret value appears nowhere it could leak.

Reusable by higher-level tests (the connections API): capture every log record through the
production JSON formatter, collect exception texts and HTTP bodies, then scan them, the
database file bytes (SQLite file, WAL and shared memory) and every row of every table.
"""

from __future__ import annotations

import io
import logging
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from server.db import Database
from server.logs import JsonFormatter
from server.models import metadata


@dataclass
class LeakReport:
    """Where each canary was found; empty means clean."""

    hits: list[str] = field(default_factory=list)

    def check_text(self, where: str, text: str, canaries: Iterable[str]) -> None:
        for c in canaries:
            if c in text:
                self.hits.append(f"{where}: contains canary {c[:14]}…")

    def check_bytes(self, where: str, data: bytes, canaries: Iterable[str]) -> None:
        for c in canaries:
            for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
                if c.encode(encoding) in data:
                    self.hits.append(f"{where}: contains canary {c[:14]}… ({encoding})")


@contextmanager
def captured_logs(level: int = logging.DEBUG) -> Iterator[io.StringIO]:
    """Every log record from every logger, formatted as production formats it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(level)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    # SQL statements and their bound parameters, so a plaintext in a query would show up.
    sa_logger = logging.getLogger("sqlalchemy.engine")
    sa_old = sa_logger.level
    sa_logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        sa_logger.setLevel(sa_old)


def exception_text(exc: BaseException) -> str:
    return str(exc) + "\n" + repr(exc) + "\n" + "".join(traceback.format_exception(exc))


def sqlite_files(url: str) -> list[Path]:
    if not url.startswith("sqlite"):
        return []
    base = Path(url.split("///", 1)[1])
    return [
        p
        for p in (base, base.with_name(base.name + "-wal"), base.with_name(base.name + "-shm"))
        if p.exists()
    ]


async def scan_database(db: Database, report: LeakReport, canaries: Iterable[str]) -> int:
    """Scan every row of every table as text and raw bytes; returns the number of rows read."""
    canaries = list(canaries)
    rows_read = 0
    async with db.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in (await conn.execute(select(table))).all():
                rows_read += 1
                for value in row:
                    if isinstance(value, bytes | bytearray | memoryview):
                        report.check_bytes(f"table {table.name}", bytes(value), canaries)
                    else:
                        report.check_text(f"table {table.name}", repr(value), canaries)
    for path in sqlite_files(db.url):
        report.check_bytes(f"file {path.name}", path.read_bytes(), canaries)
    return rows_read
