"""Fixtures for the cloud engine tests: a pool of upstream clients and a served emulator.

A test module that takes `served` defines an `emulator` fixture (any object with an ASGI
`app`); `served` runs that app on a loopback port for the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from providers.upstream_pool import UpstreamClients
from tests.emulators.harness import ServedApp


@pytest.fixture
async def clients() -> AsyncIterator[UpstreamClients]:
    async with UpstreamClients() as clients:
        yield clients


@pytest.fixture
def served(emulator: Any) -> Iterator[ServedApp]:
    with ServedApp(emulator.app) as served:
        yield served
