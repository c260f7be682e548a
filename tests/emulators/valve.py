"""A valve on an emulator's responses: each one starts, then waits mid-body until the test opens it.

While `holding`, every new response passes its head and its first `passed` body frames (a
stream's first chunks reach the client), then its next frame waits until `open` is called.
A test uses it to have streams in flight, started and unfinished, at a moment it chooses (a
replica killed mid-stream) without guessing at timings. The emulator runs on its own thread
(tests/emulators/harness.py); `open` and `held` are thread-safe.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any


class Valve:
    def __init__(self, app: Callable[..., Awaitable[None]], *, passed: int = 2) -> None:
        self.app = app
        self.passed = passed
        self.holding = False
        self._lock = threading.Lock()
        self._opened = False
        self._waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.holding:
            await self.app(scope, receive, send)
            return
        opened = asyncio.Event()
        with self._lock:
            self._waiting.append((asyncio.get_running_loop(), opened))
            if self._opened:
                opened.set()
        frames = 0

        async def held_send(message: dict[str, Any]) -> None:
            nonlocal frames
            if message["type"] == "http.response.body" and message.get("body"):
                frames += 1
                if frames > self.passed:
                    await opened.wait()
            await send(message)

        await self.app(scope, receive, held_send)

    @property
    def held(self) -> int:
        """Responses that went through the valve while it was holding."""
        with self._lock:
            return len(self._waiting)

    def open(self) -> None:
        """Let every held response go on, and every later one pass without waiting."""
        with self._lock:
            self._opened = True
            for loop, opened in self._waiting:
                loop.call_soon_threadsafe(opened.set)
