"""Fresh test databases, quickly: one migrated template per test process and backend, copied for
each test that wants a migrated database.

Migrating a database takes 0.2-0.45 s, and creating or dropping a PostgreSQL one 0.4-0.5 s under
the suite's load (0.01-0.08 s on a quiet server), against a few milliseconds to copy a file. So a
SQLite test gets a copy of a template file, and a PostgreSQL test a database made from a template
one step ahead, while the test before it ran, and dropped behind it, while the next one runs. The
PostgreSQL work runs in one thread of its own (`Ahead`), in order, so a test waits only for its own
database and never for a drop.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import sqlite3
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from server.db import Database

PG_ADMIN_DSN = os.environ.get("PATCHBAY_TEST_PG_DSN", "postgresql://root@127.0.0.1:5432/test")


async def pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_url(name: str) -> str:
    return PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + name


def pg_host_port() -> tuple[str, int]:
    host, _, port = PG_ADMIN_DSN.split("@", 1)[-1].split("/", 1)[0].partition(":")
    return host, int(port or 5432)


async def _migrate(url: str) -> None:
    database = Database(url)
    try:
        await database.upgrade()
    finally:
        await database.dispose()


class Ahead:
    """This process's PostgreSQL template, the next migrated copy of it, and the drops, all made
    in order by one thread (each with an event loop of its own), whichever test loop asks."""

    def __init__(self) -> None:
        self._thread: ThreadPoolExecutor | None = None
        self._template: str | None = None
        self._next: Future[str] | None = None

    def _pool(self) -> ThreadPoolExecutor:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="test-databases")
        return self._thread

    def _made_template(self) -> str:
        if self._template is None:
            name = "pb_tmpl_" + secrets.token_hex(6)
            asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
            try:
                asyncio.run(_migrate(pg_url(name)))
            except BaseException:
                asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                raise
            self._template = name
        return self._template

    def _copy(self) -> str:
        name = "pb_test_" + secrets.token_hex(6)
        asyncio.run(pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{self._made_template()}"'))
        return name

    async def migrated(self, *, ahead: bool = True) -> str:
        """A fresh migrated database's name; with `ahead`, the next one is made while the
        caller's test runs."""
        current = self._next or self._pool().submit(self._copy)
        self._next = self._pool().submit(self._copy) if ahead else None
        return await asyncio.wrap_future(current)

    def quiet(self) -> None:
        """Returns once the thread has done all it was given. A test that counts what the cyclic
        collector finds waits for this: the thread's own connections leave cycles."""
        if self._thread is not None:
            self._thread.submit(lambda: None).result()

    def drop(self, name: str) -> None:
        """Drop a test's database behind it (the test does not wait)."""
        sql = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        self._pool().submit(lambda: asyncio.run(pg_admin(sql)))

    def finish(self) -> None:
        """At the end of the run: wait for the drops, then drop the unused copy and the template."""
        if self._thread is None:
            return
        spare, self._next = self._next, None
        names = [spare.result()] if spare is not None and spare.exception() is None else []
        names += [self._template] if self._template is not None else []
        for name in names:
            self.drop(name)
        self._thread.shutdown(wait=True)
        self._thread, self._template = None, None


postgres = Ahead()

_sqlite_template: list[Path] = []


async def sqlite_migrated(path: Path) -> None:
    """Write a fresh migrated SQLite database at `path`: a copy of this process's template."""
    if not _sqlite_template:
        template = Path(tempfile.mkdtemp(prefix="pb-sqlite-template-")) / "migrated.db"
        await _migrate(f"sqlite+aiosqlite:///{template}")
        # The server opens it in WAL mode; back in rollback mode the whole database is this one
        # file (the log is checkpointed into it and removed), so a copy of the file is all of it.
        with sqlite3.connect(template) as conn:
            conn.execute("PRAGMA journal_mode=DELETE")
        conn.close()
        _sqlite_template.append(template)
    shutil.copyfile(_sqlite_template[0], path)


def finish() -> None:
    postgres.finish()
    for template in _sqlite_template:
        shutil.rmtree(template.parent, ignore_errors=True)
    _sqlite_template.clear()
