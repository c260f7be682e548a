"""Fixtures of the speech routing tests: the ElevenLabs emulator served on loopback and a pool
of upstream clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from providers.upstream_pool import UpstreamClients
from tests.emulators import elevenlabs as el
from tests.emulators.harness import ServedApp


@pytest.fixture
def eleven() -> el.ElevenLabsEmulator:
    return el.ElevenLabsEmulator()


@pytest.fixture
def eleven_url(eleven: el.ElevenLabsEmulator) -> Iterator[str]:
    with ServedApp(eleven.app) as served:
        yield served.url


@pytest.fixture
async def clients() -> AsyncIterator[UpstreamClients]:
    async with UpstreamClients() as clients:
        yield clients
