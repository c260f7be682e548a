"""Whose speech segment is running: the API key a shared local engine should charge its slot to.

The offline engines are one per process and shared by every tenant, so they admit a bounded
number of CPU jobs and give each key only a share of those (`voice.stt.worker`). The engine
seam (`STTEngine.transcribe`) carries no caller, and should not: cloud engines have no use
for it. The router sets this variable around a segment instead, and the engine's runner
reads it when a job asks for a slot. Unset (None) is one anonymous caller.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

SPEECH_CALLER: ContextVar[str | None] = ContextVar("speech_caller", default=None)


@contextlib.contextmanager
def speaking_for(key_id: str | None) -> Iterator[None]:
    """Run the enclosed speech work on behalf of `key_id` (tasks started inside inherit it)."""
    token = SPEECH_CALLER.set(key_id)
    try:
        yield
    finally:
        SPEECH_CALLER.reset(token)
