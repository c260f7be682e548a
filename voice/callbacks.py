"""How a session's parts reach back to it without keeping it alive: its tasks in a set of their
own, and callbacks that hold their owner weakly.

A part that held its owner's bound method (`listener._ended = session._commit_audio`) made a
reference cycle, owner → part → method → owner, and every session was then left for the
cyclic collector when it ended: its conversation and every part with it stayed in memory, and
in the oldest generation's walk, until the next full collection. With these the parts point
back only weakly or at the task set, and an ended session is freed as soon as its last
reference goes (`tests/voice/test_session_lifetime.py`).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Generic, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class SessionTasks:
    """The tasks a session starts: each is kept until done, and they are waited for and
    cancelled together. `spawn` is what the session's parts are given to start theirs."""

    __slots__ = ("_running",)

    def __init__(self) -> None:
        self._running: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(coro)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    @property
    def busy(self) -> bool:
        """Whether any task runs now."""
        return bool(self._running)

    async def idle(self) -> None:
        """Until none runs (a task may start another as it ends)."""
        while self._running:
            await asyncio.wait(set(self._running))

    async def cancel(self) -> None:
        """Cancel every task and wait until they have all ended."""
        for task in list(self._running):
            task.cancel()
        if self._running:
            await asyncio.wait(set(self._running))


class WeakCallback(Generic[P, R]):
    """A bound method that does not keep its object alive. Calling it after the object is gone
    raises ReferenceError; a session's parts die with the session, so none ever does."""

    __slots__ = ("_method",)

    def __init__(self, method: Callable[P, R]) -> None:
        self._method = weakref.WeakMethod(method)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        method = self._method()
        if method is None:
            raise ReferenceError("the callback's object is gone")
        result: R = method(*args, **kwargs)
        return result
