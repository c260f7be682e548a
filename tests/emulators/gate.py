"""A gate in front of an emulator: hold requests at the door, let chosen ones through.

While `holding`, each new request waits at the gate (its body read, so the gate knows whether it
asks for a stream) until the test lets it on with `let_through`; the gate also counts the
responses the emulator has finished. A test uses it to have requests in flight at a known stage
(credits held, the provider not yet answering) without guessing at timings. The emulator runs on
its own thread (tests/emulators/harness.py); the gate's methods are thread-safe, and `wait_until`
blocks, so a test calls it through `asyncio.to_thread`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import orjson


class Gate:
    """An ASGI wrapper for an emulator: while `holding`, each new request waits at the gate until
    `let_through` lets it on; it records which waiting requests ask for a stream and how many
    responses the emulator has finished. Thread-safe: the emulator runs on its own thread."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app
        self.holding = False
        self._lock = threading.Lock()
        self._waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Event, bool]] = []
        self._finished = 0
        self._changed = threading.Condition(self._lock)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.holding:
            await self._run(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        opened = asyncio.Event()
        with self._changed:
            self._waiting.append((asyncio.get_running_loop(), opened, bool(orjson.loads(body).get("stream"))))
            self._changed.notify_all()
        await opened.wait()
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return dict(await receive())

        await self._run(scope, replay, send)

    async def _run(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            with self._changed:
                self._finished += 1
                self._changed.notify_all()

    def waiting(self, stream: bool | None = None) -> list[int]:
        with self._lock:
            return [i for i, (_, _, s) in enumerate(self._waiting) if stream is None or s is stream]

    def let_through(self, indexes: list[int]) -> None:
        with self._lock:
            for i in indexes:
                loop, opened, _ = self._waiting[i]
                loop.call_soon_threadsafe(opened.set)

    def open_all(self) -> None:
        self.holding = False
        self.let_through(list(range(len(self._waiting))))

    def wait_until(self, *, waiting: int = 0, finished: int = 0, timeout: float = 30) -> None:
        """Block until at least `waiting` requests wait and `finished` responses ended. Call via
        `asyncio.to_thread`."""
        with self._changed:
            ok = self._changed.wait_for(
                lambda: len(self._waiting) >= waiting and self._finished >= finished, timeout
            )
        assert ok, f"gate: {len(self._waiting)} waiting, {self._finished} finished"
