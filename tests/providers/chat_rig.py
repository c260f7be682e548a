"""The rig shared by the chat adapter loopback tests (Anthropic, Gemini) and the transport
faults every such adapter must survive the same way.

A `Rig` is an emulator, an adapter, the endpoint pointing the adapter at the emulator, and
the key (a `CanaryCredential`, so reveals are counted). The fault checks take a rig and a
chat scenario sized for the provider's stream (how many events make "halfway").

No check times anything. A timeout check's emulator holds the response far longer than the
test waits, so only the adapter's own deadline can end it; a cancel check's emulator holds the
connection and the adapter's deadlines are its defaults (tens of seconds), so the disconnect
it records can only be the cancel closing the connection. `HANG_GUARD` bounds a hang only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pytest

from providers.adapters.base import ChatAdapter, Endpoint
from providers.contract import ErrorClass, ProviderPreset
from providers.errors import ProviderError
from providers.types import ChatRequest, JsonSchemaFormat, StreamEvent, TextDelta, ToolSpec
from tests.emulators import chat_scenarios as cs
from tests.emulators.harness import ServedApp
from tests.emulators.scripted import CanaryCredential

EmulatorT = TypeVar("EmulatorT", bound=cs.ChatEmulator)
HANG_GUARD = 10.0
"""How long a check waits for an event that should follow at once: a bound on a hang only."""

WEATHER = ToolSpec(
    name="get_weather",
    description="Weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CITY_SCHEMA = JsonSchemaFormat(
    name="city",
    schema={
        "type": "object",
        "properties": {"name": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["name", "population"],
    },
)


@dataclass
class Rig(Generic[EmulatorT]):
    emulator: EmulatorT
    adapter: ChatAdapter
    endpoint: Endpoint
    key: CanaryCredential


def make_rig(
    served: tuple[EmulatorT, str], adapter: ChatAdapter, preset: ProviderPreset, key: str, label: str
) -> Rig[EmulatorT]:
    emulator, url = served
    credential = CanaryCredential(key)
    endpoint = Endpoint(preset=preset, base_url=url, credential=credential, label=label)
    return Rig(emulator, adapter, endpoint, credential)


def serve(emulator: EmulatorT) -> Iterator[tuple[EmulatorT, str]]:
    """Body of a module-scoped `server` fixture: the emulator and its loopback URL."""
    with ServedApp(emulator.app) as app:
        yield emulator, app.url


async def collect(rig: Rig[Any], request: ChatRequest) -> list[StreamEvent]:
    return [event async for event in rig.adapter.stream(request, rig.endpoint)]


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def check_slow_first_byte_times_out(rig: Rig[Any], request: ChatRequest, *, streaming: bool) -> None:
    """`rig` has a short first-byte timeout: the call times out and closes the upstream.

    The emulator would answer normally after 60 s, so a TIMEOUT can only be the adapter's deadline.
    """
    rig.emulator.enqueue(cs.slow_first_byte(60.0))
    with pytest.raises(ProviderError) as caught:
        if streaming:
            await collect(rig, request)
        else:
            await rig.adapter.complete(request, rig.endpoint)
    assert caught.value.error_class is ErrorClass.TIMEOUT
    assert await asyncio.to_thread(rig.emulator.wait_disconnect, HANG_GUARD)


async def check_stall_times_out_after_output(
    rig: Rig[Any], request: ChatRequest, stall: cs.ChatScenario
) -> None:
    """`rig` has a short between-chunks timeout; `stall` stalls after some text."""
    rig.emulator.enqueue(stall)
    seen: list[StreamEvent] = []
    with pytest.raises(ProviderError) as caught:
        async for event in rig.adapter.stream(request, rig.endpoint):
            seen.append(event)
    assert caught.value.error_class is ErrorClass.TIMEOUT
    assert text_of(seen)
    assert await asyncio.to_thread(rig.emulator.wait_disconnect, HANG_GUARD)


async def check_cancel_closes_upstream(rig: Rig[Any], request: ChatRequest, stall: cs.ChatScenario) -> None:
    """Cancelling the consumer once text arrived closes the connection (`rig` has default timeouts)."""
    rig.emulator.enqueue(stall)
    first_text = asyncio.Event()

    async def consume() -> None:
        async for event in rig.adapter.stream(request, rig.endpoint):
            if isinstance(event, TextDelta):
                first_text.set()

    task = asyncio.create_task(consume())
    await first_text.wait()
    assert rig.emulator.disconnects == []
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(rig.emulator.wait_disconnect, HANG_GUARD) is not None
