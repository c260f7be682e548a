"""Upstream replies that never end: the bounds that keep one from growing a worker's memory.

The `openai-chat` adapter against an endpoint that writes a mebibyte at a time without end, as a
body read whole (`providers.http.MAX_REPLY_BYTES`) and as one SSE line
(`providers.sse.MAX_EVENT_BYTES`); docs/reliability.md, "Malformed provider streams".
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from providers.adapters.base import Endpoint
from providers.adapters.openai_chat import OpenAIChatAdapter
from providers.contract import PRESETS, ErrorClass, ProviderId
from providers.errors import ProviderError
from providers.http import MAX_REPLY_BYTES
from providers.sse import MAX_EVENT_BYTES
from providers.upstream_pool import UpstreamClients
from tests.emulators.harness import EndlessBody, ServedApp
from tests.providers.test_openai_chat_loopback import HANG_GUARD, KEY, REQUEST, STEADY, Key


@pytest.fixture
async def adapter() -> AsyncIterator[OpenAIChatAdapter]:
    async with UpstreamClients() as clients:
        yield OpenAIChatAdapter(clients, STEADY)


@pytest.mark.parametrize("streaming", [False, True])
async def test_a_reply_that_never_ends_fails_once_it_passes_the_bound(
    adapter: OpenAIChatAdapter, streaming: bool
) -> None:
    # Without a bound the worker would hold the whole reply (200 MiB here, or any size) in memory.
    # A JSON body, or one SSE line, that grows a MiB a write, 200 MiB in all.
    head, kind = (b"data: ", b"text/event-stream") if streaming else (b'{"id":"', b"application/json")
    app = EndlessBody(kind, b"x" * 2**20, 200, head=head)
    with ServedApp(app) as served:
        endpoint = Endpoint(PRESETS[ProviderId.OPENAI_COMPATIBLE], served.url + "/v1", Key(KEY), label="t")
        with pytest.raises(ProviderError) as info:
            if streaming:
                _ = [event async for event in adapter.stream(REQUEST, endpoint)]
            else:
                await adapter.complete(REQUEST, endpoint)
        bound = MAX_EVENT_BYTES if streaming else MAX_REPLY_BYTES
        assert info.value.error_class is ErrorClass.SERVER_ERROR
        assert f"{bound:,} bytes" in info.value.message
        # The connection was dropped, not left with the rest of the reply unread.
        assert await asyncio.to_thread(app.hung_up.wait, HANG_GUARD)
