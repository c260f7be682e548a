"""Fakes for the failed-authentication throttle's tests: a clock that moves only when told, and
a sleep that returns at once and remembers what it was asked for."""

from __future__ import annotations


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Sleeps:
    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
