"""A realtime call's session is freed when the call ends, by reference counting alone.

The unit tests (`tests/voice/test_session_lifetime.py`) hold the session itself; this one
holds the whole server path: a spoken turn through the WebSocket, the connection's serializer
and handler, the routed engines and LLM, then the caller hangs up. With the cyclic collector
off, the `VoiceSession`, its `RealtimeConnection` and their `Serializer` must be gone soon after,
not left in cycles until a full collection walks them (which under call churn is most of what
it walks).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from server.realtime.connection import RealtimeConnection
from server.realtime.serialize import Serializer
from tests.collector import cycles_left
from tests.emulators.openai import OpenAIEmulator, Scenario
from tests.server.realtime.conftest import Client
from tests.server.realtime.test_endpoint import REPLY, speech_24k, stream_audio
from voice.session import VoiceSession


class Made:
    """Every object of the watched kinds made while it watches, held weakly; `all_freed` is
    set by the weak references' callbacks when the last of them is freed."""

    def __init__(self) -> None:
        self.refs: list[weakref.ref[Any]] = []
        self.all_freed = asyncio.Event()

    def watch(self, init: Callable[..., None]) -> Callable[..., None]:
        def recording(obj: object, *args: Any, **kwargs: Any) -> None:
            init(obj, *args, **kwargs)
            self.refs.append(weakref.ref(obj, self._freed))

        return recording

    def _freed(self, _: weakref.ref[Any]) -> None:
        if not self.alive():
            self.all_freed.set()

    def alive(self) -> list[str]:
        return sorted(type(obj).__name__ for ref in self.refs if (obj := ref()) is not None)


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> Made:
    watched = Made()
    for kind in (VoiceSession, RealtimeConnection, Serializer):
        monkeypatch.setattr(kind, "__init__", watched.watch(kind.__init__))
    return watched


async def test_a_hung_up_call_frees_its_session_without_the_collector(
    connect: Any, llm: OpenAIEmulator, made: Made, collector_off: None
) -> None:
    llm.enqueue(Scenario(text=REPLY))
    client: Client = await connect()
    await client.until("session.created")
    await stream_audio(client, speech_24k())
    await client.until("response.done")
    assert made.alive() == ["RealtimeConnection", "Serializer", "VoiceSession"]
    await client.ws.close()

    # The server ends the session on its own time after the close. With the collector off, an
    # object left in a cycle is never freed, and the wait runs out.
    try:
        async with asyncio.timeout(10):
            await made.all_freed.wait()
    except TimeoutError:
        pytest.fail(f"the ended call left {made.alive()} in reference cycles: {cycles_left()}")
