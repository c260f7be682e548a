"""The supervisor of `patchbay serve --workers N` gives a new worker time to start before it
checks its health: a spawned worker answers pings only once it has imported the server, which
on a slow, loaded machine takes longer than uvicorn's 5-s health check (the supervisor then
killed every worker it started, forever). Worker processes are stood in for here (nothing is
spawned); the pipe, uvicorn's ping and pong and the supervisor are the real ones, and the
clock is the test's."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from uvicorn import Config
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import multiprocess

from server import worker_supervisor
from server.worker_supervisor import WORKER_START_SECONDS, WorkerSupervisor


class OSProcess:
    """What the supervisor sees of a worker's operating-system process."""

    def __init__(self) -> None:
        self.alive = True
        self.exitcode: int | None = None
        self.pid = 4242
        self.killed = False
        self.joined = False

    def start(self) -> None:
        pass

    def is_alive(self) -> bool:
        return self.alive

    def kill(self) -> None:
        if self.alive:  # a process that has exited keeps its exit code
            self.killed, self.alive, self.exitcode = True, False, -9

    def join(self, timeout: float | None = None) -> None:
        assert not self.alive, "joined a worker that is still running: a real join would block"
        self.joined = True


class Worker(multiprocess.Process):
    """uvicorn's worker handle over a stand-in process: `pong` is what the worker's health-check
    thread does once it runs."""

    answering: bool | None = None
    """When set, each new worker's health-check thread runs at once and reports this as
    whether its server has started (as uvicorn's `always_pong` does)."""

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        super().__init__(config, sockets)
        self.process: Any = OSProcess()
        if self.answering is not None:
            self.server.started = self.answering
            threading.Thread(target=self._always_pong, daemon=True).start()

    drains = False
    """When set, a terminated worker goes on running (draining its sessions) until the test
    ends it; otherwise it exits at once."""

    def terminate(self) -> None:  # uvicorn's sends SIGTERM to the pid
        if not self.drains:
            self.process.alive, self.process.exitcode = False, 0
        self.parent_conn.close()

    def _always_pong(self) -> None:
        try:
            while True:
                self.pong()
        except (EOFError, OSError):
            return  # the supervisor's end of the pipe is closed

    def pings_waiting(self) -> int:
        count = 0
        while self.child_conn.poll():
            self.child_conn.recv()
            count += 1
        return count


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.step = 0.0
        """Added after each reading: time passing while the supervisor waits."""

    def __call__(self) -> float:
        now = self.now
        self.now += self.step
        return now


@pytest.fixture
def supervised(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[WorkerSupervisor, Clock]]:
    monkeypatch.setattr(worker_supervisor, "Process", Worker)
    slot = socket.socket()
    slot.bind(("127.0.0.1", 0))
    clock = Clock()
    config = Config("server.serve:app_from_environment", factory=True, timeout_worker_healthcheck=1)
    supervisor = WorkerSupervisor(config, [slot], clock=clock)
    supervisor.init_processes()
    try:
        yield supervisor, clock
    finally:
        slot.close()


def stand_in(worker: multiprocess.Process) -> OSProcess:
    assert isinstance(worker.process, OSProcess)
    return worker.process


def answer_next_ping(worker: Worker) -> threading.Thread:
    """The worker's health-check thread, for one ping."""
    thread = threading.Thread(target=worker.pong)
    thread.start()
    return thread


def test_a_worker_slow_to_start_is_left_to_start_then_checked_as_usual(
    supervised: tuple[WorkerSupervisor, Clock],
) -> None:
    supervisor, clock = supervised
    worker = supervisor.processes[0]
    assert isinstance(worker, Worker)

    clock.now += 30  # six times uvicorn's health check, no answer yet
    supervisor.keep_subprocess_alive()
    assert supervisor.processes[0] is worker and not stand_in(worker).killed

    worker.pong()  # its health-check thread runs: the one ping sent at its start, and only that
    assert worker.pings_waiting() == 0
    answering = answer_next_ping(worker)
    supervisor.keep_subprocess_alive()  # first answer read, then the usual check, answered
    answering.join()
    assert supervisor.processes[0] is worker and supervisor.starting == {}

    supervisor.keep_subprocess_alive()  # from now on an unanswered ping is a hung worker
    assert stand_in(worker).killed
    replacement = supervisor.processes[0]
    assert replacement is not worker and set(supervisor.starting) == {0}


def test_a_worker_that_never_answers_is_replaced_after_the_allowance(
    supervised: tuple[WorkerSupervisor, Clock], caplog: pytest.LogCaptureFixture
) -> None:
    supervisor, clock = supervised
    worker = supervisor.processes[0]
    clock.now += WORKER_START_SECONDS - 1
    supervisor.keep_subprocess_alive()
    assert supervisor.processes[0] is worker

    clock.now += 2
    supervisor.keep_subprocess_alive()
    assert stand_in(worker).killed and supervisor.processes[0] is not worker
    assert supervisor.starting == {0: clock.now}
    assert "a worker died; starting another" in caplog.text
    assert not supervisor.should_exit.is_set()


def test_a_worker_that_cannot_start_stops_the_server_even_before_it_answers(
    supervised: tuple[WorkerSupervisor, Clock], caplog: pytest.LogCaptureFixture
) -> None:
    supervisor, _ = supervised
    worker = supervisor.processes[0]
    stand_in(worker).alive, stand_in(worker).exitcode = False, STARTUP_FAILURE
    supervisor.keep_subprocess_alive()
    assert supervisor.should_exit.is_set()
    assert "a worker failed to start; stopping" in caplog.text


def test_a_worker_that_dies_while_starting_is_replaced_at_once(
    supervised: tuple[WorkerSupervisor, Clock],
) -> None:
    supervisor, _ = supervised
    worker = supervisor.processes[0]
    stand_in(worker).alive, stand_in(worker).exitcode = False, 1
    supervisor.keep_subprocess_alive()
    assert supervisor.processes[0] is not worker and not supervisor.should_exit.is_set()


def test_a_reload_waits_for_a_slow_worker_and_then_retires_the_old_one(
    supervised: tuple[WorkerSupervisor, Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    supervisor, _ = supervised
    old = supervisor.processes[0]
    old.pong()  # the old worker has been serving
    monkeypatch.setattr(Worker, "answering", True)
    supervisor.restart_all()
    new = supervisor.processes[0]
    assert new is not old and stand_in(old).exitcode == 0 and not stand_in(new).killed
    assert supervisor.starting == {}


def test_a_reload_whose_worker_never_answers_keeps_the_old_one(
    supervised: tuple[WorkerSupervisor, Clock], caplog: pytest.LogCaptureFixture
) -> None:
    supervisor, clock = supervised
    old = supervisor.processes[0]
    started = supervisor.starting[0]  # the old worker itself has not answered yet
    clock.step = WORKER_START_SECONDS / 2
    supervisor.restart_all()
    assert supervisor.processes[0] is old and stand_in(old).alive
    assert supervisor.starting == {0: started}
    assert "a restarted worker was not ready in time; keeping the old one" in caplog.text


def reload_while_draining(supervisor: WorkerSupervisor, monkeypatch: pytest.MonkeyPatch) -> Worker:
    """SIGHUP's reload of a serving worker whose realtime sessions keep it running after its
    SIGTERM; returns the old worker."""
    old = supervisor.processes[0]
    assert isinstance(old, Worker)
    old.pong()  # the old worker has been serving
    monkeypatch.setattr(Worker, "answering", True)
    monkeypatch.setattr(Worker, "drains", True)
    supervisor.restart_all()
    return old


def test_a_reload_does_not_wait_for_the_old_worker_to_drain(
    supervised: tuple[WorkerSupervisor, Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    supervisor, _ = supervised
    old = reload_while_draining(supervisor, monkeypatch)  # returned while the old one still drains
    new = supervisor.processes[0]
    assert new is not old and stand_in(old).alive and supervisor.retiring == [old]
    supervisor.keep_subprocess_alive()  # the new worker is checked meanwhile
    assert supervisor.processes[0] is new and not stand_in(new).killed
    assert supervisor.retiring == [old]
    stand_in(old).alive, stand_in(old).exitcode = False, 0  # its last session ended
    supervisor.keep_subprocess_alive()
    assert stand_in(old).joined and supervisor.retiring == []


def test_a_stop_during_a_reload_waits_for_the_retiring_worker_too(
    supervised: tuple[WorkerSupervisor, Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    supervisor, _ = supervised
    old = reload_while_draining(supervisor, monkeypatch)
    supervisor.terminate_all()
    assert supervisor.slots[0].fileno() == -1  # the port stops listening first
    for worker in (old, supervisor.processes[0]):
        stand_in(worker).alive = False  # both drained
    supervisor.join_all()
    assert stand_in(old).joined and supervisor.retiring == []
