"""Run a local model's blocking calls off the event loop, a bounded number at a time, fairly.

The internal STT engines decode on the CPU for hundreds of milliseconds (a minute of audio
takes pocketsphinx many seconds); doing that on the event loop would stall every session in
the process. `BlockingRunner` runs such calls in its own small pool and admits at most `limit`
at once. A library that holds the GIL while it works (pocketsphinx does, for the whole decode)
stalls the loop from a thread just as well, so such an engine asks for a process pool.

The engines are shared by every tenant of the process, so one API key gets at most
`per_caller` of the slots (the caller is `providers.speech.caller.SPEECH_CALLER`): its
further jobs wait in line without holding a slot, and another key's job is admitted ahead
of them. Freed slots go round robin over the keys in line, first come first served within a key.

A slot is held until the worker really finishes, even when the awaiting task is cancelled
(a thread cannot be interrupted), so cancelled work never lets the CPU be oversubscribed or
a non-thread-safe model be entered twice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import multiprocessing
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from providers.speech.caller import SPEECH_CALLER

T = TypeVar("T")


class BlockingRunner:
    def __init__(
        self, limit: int, *, name: str, per_caller: int | None = None, processes: bool = False
    ) -> None:
        """`per_caller` defaults to `limit - 1` (at least 1), so one key always leaves a slot
        for the others. With `processes`, `fn` and its arguments must pickle (a module-level
        function) and run in worker processes started on first use."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        share = max(1, limit - 1) if per_caller is None else per_caller
        if not 1 <= share <= limit:
            raise ValueError(f"per_caller must be within 1-{limit}, got {share}")
        self.limit = limit
        self.per_caller = share
        self._executor: concurrent.futures.Executor
        if processes:
            # Spawned, not forked: the server process has threads and an event loop to not copy.
            self._executor = concurrent.futures.ProcessPoolExecutor(
                max_workers=limit, mp_context=multiprocessing.get_context("spawn")
            )
        else:
            self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=limit, thread_name_prefix=name)
        # Waiters are futures of one loop; a runner built at import time may serve several
        # loops over its life (tests do), so they are dropped when the running loop changes.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[str | None, deque[asyncio.Future[None]]] = {}
        self._busy = 0
        self._by_caller: dict[str | None, int] = {}
        self._generation = 0

    @property
    def busy(self) -> int:
        """Calls currently running in a worker (including ones whose caller gave up)."""
        return self._busy

    def running_for(self, caller: str | None) -> int:
        return self._by_caller.get(caller, 0)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # The old loop's jobs can no longer hand their slots back to anyone waiting here.
            self._loop, self._waiters, self._busy, self._by_caller = loop, {}, 0, {}
            self._generation += 1
        generation = self._generation
        caller = SPEECH_CALLER.get()
        await self._acquire(loop, caller)
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            self._release(caller)
            raise

        def finished(_: concurrent.futures.Future[T]) -> None:
            # A closed loop raises RuntimeError; then nobody is waiting for the slot any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._finish, generation, caller)

        future.add_done_callback(finished)
        return await asyncio.wrap_future(future)

    def _admissible(self, caller: str | None) -> bool:
        return self._busy < self.limit and self._by_caller.get(caller, 0) < self.per_caller

    def _take(self, caller: str | None) -> None:
        self._busy += 1
        self._by_caller[caller] = self._by_caller.get(caller, 0) + 1

    async def _acquire(self, loop: asyncio.AbstractEventLoop, caller: str | None) -> None:
        # Waiters are woken as soon as they become admissible, so when there is room for this
        # caller now, nobody who could use it is still in line.
        if self._admissible(caller):
            self._take(caller)
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.setdefault(caller, deque()).append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release(caller)  # admitted, then cancelled before running: pass it on
            else:
                line = self._waiters.get(caller)
                if line is not None and waiter in line:
                    line.remove(waiter)
                    if not line:
                        del self._waiters[caller]
            raise

    def _finish(self, generation: int, caller: str | None) -> None:
        if generation == self._generation:
            self._release(caller)

    def _release(self, caller: str | None) -> None:
        self._busy -= 1
        left = self._by_caller[caller] - 1
        if left:
            self._by_caller[caller] = left
        else:
            del self._by_caller[caller]
        # Round robin over the callers in line: a caller just served goes to the back, so a
        # key with many queued jobs takes turns with the others instead of going first.
        for waiting in list(self._waiters):
            if self._busy >= self.limit:
                return
            line = self._waiters[waiting]
            while line and line[0].done():
                line.popleft()
            if not line:
                del self._waiters[waiting]
            elif self._admissible(waiting):
                self._take(waiting)
                line.popleft().set_result(None)
                del self._waiters[waiting]
                if line:
                    self._waiters[waiting] = line

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
