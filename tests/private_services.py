"""A Redis and a PostgreSQL of the test's own, to stop and start at will.

The shared services on 6379 and 5432 serve every test process at once and must never be
stopped; a fault test that takes its store away starts one of these instead, on a free port in
its own temporary directory. PostgreSQL comes from the Debian server binaries
(`/usr/lib/postgresql/<version>/bin`); when they are absent the test is skipped (or fails under
CI, like the shared services). PostgreSQL refuses to run as root, so as root the cluster runs
as the `postgres` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.emulators.harness import free_port

READY_WITHIN = 60.0
"""A bound on a hang while a server starts on a loaded machine; the poll ends as soon as it answers."""


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _wait(predicate: object, what: str) -> None:
    deadline = time.monotonic() + READY_WITHIN
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} did not happen within {READY_WITHIN:g} s"
        time.sleep(0.05)  # polling for readiness, not standing in for it


def _missing(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is not installed (CI=true: the fault tests need it)")
    pytest.skip(f"{what} is not installed")


class PrivateRedis:
    """`redis-server` on a free port, without persistence: a restart starts empty, as after a crash."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            _missing("redis-server")
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._proc = subprocess.Popen(
            [*args, "--dir", str(self.directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait(lambda: _listening(self.port), f"redis-server on port {self.port} listening")

    def kill(self) -> None:
        """SIGKILL: the process is gone at once, mid-command for whoever was talking to it."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(10)
            self._proc = None
        _wait(lambda: not _listening(self.port), f"port {self.port} closing")


@contextlib.contextmanager
def private_redis(directory: Path) -> Iterator[PrivateRedis]:
    redis = PrivateRedis(directory)
    redis.start()
    try:
        yield redis
    finally:
        redis.kill()


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


class PrivatePostgres:
    """A PostgreSQL cluster in a temporary directory on a free port, trust authentication."""

    def __init__(self, directory: Path) -> None:
        """`directory` must be reachable by the server's user (pytest's `tmp_path` is not, for
        `postgres`, under root's 0700 base): `private_postgres` makes one."""
        bindir = postgres_bin()
        if bindir is None:
            _missing("PostgreSQL server binaries (/usr/lib/postgresql/*/bin)")
        assert bindir is not None
        self.bindir = bindir
        self.data = directory / "pgdata"
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self.url = f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def init(self) -> None:
        self.data.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.data, "postgres", "postgres")
            shutil.chown(self.data.parent, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", self.user, "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.data / "log"), "-w", "start")
        _wait(lambda: _listening(self.port), f"PostgreSQL on port {self.port} listening")

    def stop(self, mode: str = "immediate") -> None:
        """`immediate`: every connection is cut at once, as when the server crashes."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        _wait(lambda: not _listening(self.port), f"port {self.port} closing")


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    directory = Path(tempfile.mkdtemp(prefix="pb-private-pg-"))
    try:
        pg = PrivatePostgres(directory)
        pg.init()
        pg.start()
        try:
            yield pg
        finally:
            with contextlib.suppress(subprocess.CalledProcessError, AssertionError):
                pg.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
