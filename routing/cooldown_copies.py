"""The Redis cooldown store's copies: each profile's value as this process last read or wrote it,
planned from for up to `seconds` while this process hears the other replicas' cooldown notices.

A copy is what a compare-and-set of a success expects, too. Every notice and every write here
moves `generation`: a read that overlapped one may be older than what it returned, so it is
kept for the compare-and-set but not planned from again (`UNREAD`). While notices are not heard
(`listening` off, or just switched) no copy is planned from at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import orjson

from routing.cooldown import ProfileState, state_from_dict


class Seen(NamedTuple):
    """A profile's value as this process last knew it in Redis."""

    raw: bytes | str
    """The raw value (b"" for none): what a compare-and-set expects."""
    state: ProfileState | None
    read_at: float
    """When it was read (the copies' clock); -inf: not to be planned from again."""


UNREAD = -math.inf
_MAX_SEEN = 10_000


def decode(raw: bytes | str) -> ProfileState:
    return state_from_dict(orjson.loads(raw))


class Copies:
    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
        """`seconds`: how long a value read from Redis is planned from (0: never)."""
        self._seconds = seconds
        self._clock = clock
        self._seen: dict[str, Seen] = {}
        self._listening = False
        self.generation = 0
        """Moves on every notice and write here: a read that overlapped one is not kept."""

    @property
    def listening(self) -> bool:
        """Whether this process hears the cooldown notices: only then are copies planned from."""
        return self._listening

    @listening.setter
    def listening(self, value: bool) -> None:
        # Either way, notices may have been missed: no copy from before is trusted.
        self._listening = value
        self.forget_all()

    def fresh(self, keys: Sequence[str]) -> tuple[dict[str, ProfileState | None], list[str]]:
        """The states of `keys` to plan from without reading Redis, and the keys to read."""
        if not (self._listening and self._seconds > 0):
            return {}, list(keys)
        fresh_after = self._clock() - self._seconds
        states: dict[str, ProfileState | None] = {}
        missing = []
        for key in keys:
            seen = self._seen.get(key)
            if seen is not None and seen.read_at > fresh_after:
                states[key] = seen.state
            else:
                missing.append(key)
        return states, missing

    def read(
        self, keys: Sequence[str], values: Sequence[bytes | str | None], generation: int
    ) -> dict[str, ProfileState | None]:
        """Keep what a read of `keys` started at `generation` returned; their states."""
        # A notice or a write here during the read may be newer than what it returned.
        read_at = self._clock() if generation == self.generation else UNREAD
        if len(self._seen) > _MAX_SEEN:
            self._seen.clear()
        states: dict[str, ProfileState | None] = {}
        for key, value in zip(keys, values, strict=True):
            state = None if value is None else decode(value)
            self._seen[key] = Seen(value or b"", state, read_at)
            states[key] = state
        return states

    def get(self, key: str) -> Seen | None:
        return self._seen.get(key)

    def pop(self, key: str) -> Seen | None:
        return self._seen.pop(key, None)

    def put(self, key: str, seen: Seen) -> None:
        self._seen[key] = seen

    def wrote(self, key: str, raw: bytes, state: ProfileState) -> None:
        """This process wrote `key`: its copy is the written value, and reads under way are not kept."""
        self.generation += 1
        self._seen[key] = Seen(raw, state, self._clock())

    def forget(self, key: str) -> None:
        """`key` was written elsewhere (or deleted here): read it afresh, and reads under way are not kept."""
        self.generation += 1
        self._seen.pop(key, None)

    def forget_all(self) -> None:
        self.generation += 1
        self._seen.clear()
