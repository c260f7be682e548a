"""The parent of `patchbay serve --workers N`: uvicorn's supervisor (health checks, restarts,
SIGHUP reload, SIGTERM) with one listening socket per worker slot, and time for a new worker
to start before its health is checked.

A spawned worker imports the server before uvicorn's health-check thread runs in it: 4-6 s on
a slow 2-core machine, more under load. uvicorn kills a worker that does not answer a ping
within `timeout_worker_healthcheck` (5 s), so on such a machine it killed every worker it
started, and started another, forever. Here a new worker gets one ping when it starts and
`WORKER_START_SECONDS` to answer it; from its first answer on, the usual health check applies.
"""

from __future__ import annotations

import logging
import pickle
import socket
import time
from collections.abc import Callable

from uvicorn import Config
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from server.metrics import worker_exited

log = logging.getLogger("patchbay.server")

WORKER_START_SECONDS = 120.0
"""How long a new worker may take to answer its first health check (docs/operations.md)."""


class WorkerSupervisor(Multiprocess):
    """uvicorn's supervisor with one socket per worker slot instead of one shared by all (see
    `server.serve.bind_worker_sockets`) and a start-up allowance for each new worker.

    A replacement worker, after a crash or a SIGHUP restart, serves its slot's socket.
    Changing the number of workers at run time (SIGTTIN/SIGTTOU) is not supported: each
    worker needs a socket of its own, bound before the workers start.
    """

    def __init__(
        self, config: Config, slots: list[socket.socket], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(config, sockets=slots)
        self.slots = slots
        self.processes_num = len(slots)
        self.clock = clock
        self.starting: dict[int, float] = {}
        """Slots whose worker has not answered its first ping yet, with when it started."""
        self.retiring: list[Process] = []
        """Workers a reload replaced, still draining their realtime sessions (`server.ws_drain`):
        reaped as they exit, so the supervisor goes on checking the others meanwhile."""

    def _start(self, slot: int) -> Process:
        process = Process(self.config, [self.slots[slot]])
        process.start()
        # Waits in the pipe until the worker's health-check thread runs and answers it.
        process.parent_conn.send(b"ping")
        self.starting[slot] = self.clock()
        return process

    def _answered_first_ping(self, slot: int, process: Process, wait: float = 0.0) -> bool | None:
        """True once the worker in `slot` has answered its first ping (at once for one that
        did before); None while it may still be starting; False when it died before answering
        or took longer than `WORKER_START_SECONDS`."""
        started = self.starting.get(slot)
        if started is None:
            return True
        try:
            if process.parent_conn.poll(wait):
                process.parent_conn.recv()
                del self.starting[slot]
                return True
        except (OSError, EOFError, pickle.UnpicklingError):  # as uvicorn's own health check
            return False
        if not process.process.is_alive() or self.clock() - started > WORKER_START_SECONDS:
            return False
        return None

    def init_processes(self) -> None:
        self.processes = [self._start(slot) for slot in range(self.processes_num)]

    def restart_all(self) -> None:
        """Replace each worker, its successor serving before it retires (as uvicorn does). A
        retired worker drains its realtime sessions in the background (`retiring`); uvicorn
        waited for each, which left the others unchecked for up to a drain per worker."""
        for slot, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            old_started = self.starting.get(slot)
            new = self._start(slot)
            if not self._serving_in_time(slot, new):
                new.kill()
                new.join()
                # The slot is the old worker's again, as it was.
                self.starting.pop(slot, None)
                if old_started is not None:
                    self.starting[slot] = old_started
                if not self.should_exit.is_set():
                    log.error("a restarted worker was not ready in time; keeping the old one")
                return
            old.terminate()  # it drains its sessions (up to PATCHBAY_VOICE_DRAIN_SECONDS): not waited for here
            self.retiring.append(old)
            self.processes[slot] = new

    def _serving_in_time(self, slot: int, process: Process) -> bool:
        """Whether a worker started for a reload answers and serves within the allowance."""
        deadline = self.starting[slot] + WORKER_START_SECONDS
        answered = self._answered_first_ping(slot, process)
        while answered is None and not self.should_exit.is_set():
            answered = self._answered_first_ping(slot, process, wait=0.5)  # blocks on the pipe
        if not answered or self.should_exit.is_set():
            return False
        return process.wait_until_ready(max(deadline - self.clock(), 1.0), self.should_exit)

    def _reap_retiring(self) -> None:
        for old in [p for p in self.retiring if not p.process.is_alive()]:
            old.join()
            worker_exited(old.pid)
            self.retiring.remove(old)

    def keep_subprocess_alive(self) -> None:
        self._reap_retiring()
        if self.should_exit.is_set():
            return
        for slot, process in enumerate(self.processes):
            answered = self._answered_first_ping(slot, process)
            if answered is None:
                continue  # still starting
            if answered and process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()  # hung, or never answered: kill it
            process.join()
            worker_exited(process.pid)
            self.starting.pop(slot, None)
            if process.exitcode == STARTUP_FAILURE:
                # The app cannot start; every restart would fail the same way.
                log.error("a worker failed to start; stopping", extra={"fields": {"pid": process.pid}})
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            log.warning("a worker died; starting another", extra={"fields": {"pid": process.pid}})
            self.processes[slot] = self._start(slot)

    def terminate_all(self) -> None:
        """Stop listening, then stop the workers. The parent's copies of the slots' sockets kept
        the port listening while the workers drained (`server.ws_drain`): a connection arriving
        then waited in a backlog nobody would accept from, until the parent exited and the
        kernel reset it, although nginx had sent it a request. Closed, the port refuses new
        connections once the workers close theirs, and nginx tries the next replica."""
        for slot in self.slots:
            slot.close()
        super().terminate_all()

    def join_all(self) -> None:
        """Wait for every worker, those a reload replaced (still draining) included."""
        super().join_all()
        for old in self.retiring:
            old.join()
            worker_exited(old.pid)
        self.retiring.clear()

    def handle_ttin(self) -> None:
        log.warning("SIGTTIN ignored: the number of workers is fixed at start (--workers)")

    def handle_ttou(self) -> None:
        log.warning("SIGTTOU ignored: the number of workers is fixed at start (--workers)")
