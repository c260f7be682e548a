"""This process's live realtime sessions per API key, each with how to end it from outside.

Both session limiters (`server.realtime.session_limit`) count with it, and a reconnection that
names its earlier session (`replaces`) ends that session through it when this process holds it.
The active-sessions gauge follows what it holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from foundation.metrics import VOICE_SESSIONS

log = logging.getLogger("patchbay.realtime")

Close = Callable[[], None]
"""Ends a live session from outside (another connection replaced it); called at most once."""


class LiveSessions:
    """This process's live sessions per key id, each with how to end it (both limiters keep them)."""

    def __init__(self) -> None:
        self.by_key: dict[str, dict[str, Close | None]] = {}

    def count(self, key_id: str) -> int:
        return len(self.by_key.get(key_id, ()))

    def add(self, key_id: str, session_id: str, close: Close | None) -> None:
        sessions = self.by_key.setdefault(key_id, {})
        if session_id not in sessions:
            VOICE_SESSIONS.inc()
        sessions[session_id] = close

    def discard(self, key_id: str, session_id: str) -> bool:
        """Whether the session was live here."""
        sessions = self.by_key.get(key_id)
        if sessions is None or session_id not in sessions:
            return False
        del sessions[session_id]
        VOICE_SESSIONS.dec()
        if not sessions:
            del self.by_key[key_id]
        return True

    def replace(self, key_id: str, session_id: str) -> bool:
        """End a session live here that a new one of its key replaces; whether it was here."""
        close = self.by_key.get(key_id, {}).get(session_id)
        if not self.discard(key_id, session_id):
            return False
        log.info("realtime session replaced by a reconnection", extra={"fields": {"session": session_id}})
        if close is not None:
            close()
        return True

    @property
    def total(self) -> int:
        return sum(len(s) for s in self.by_key.values())
