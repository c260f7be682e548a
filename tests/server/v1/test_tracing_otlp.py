"""With `PATCHBAY_OTEL_ENDPOINT` set, the server exports its spans over the real OTLP/HTTP wire
(protobuf POSTs to the collector's `/v1/traces`), here to a tiny local collector."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from foundation import tracing
from server.settings import Settings
from tests.emulators.harness import ServedApp
from tests.emulators.otlp import OtlpCollector
from tests.server.v1.conftest import Patchbay

CHAT = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def collector_served() -> Iterator[tuple[OtlpCollector, str]]:
    collector = OtlpCollector()
    with ServedApp(collector) as served:
        yield collector, served.url


@pytest.fixture
def settings(settings: Settings, collector_served: tuple[OtlpCollector, str]) -> Settings:
    # The collector's base URL, as an operator writes it: the exporter adds /v1/traces.
    return settings.model_copy(update={"otel_endpoint": collector_served[1]})


async def test_the_server_exports_its_spans_to_the_endpoint(
    patchbay: Patchbay, collector_served: tuple[OtlpCollector, str]
) -> None:
    collector, _ = collector_served
    assert tracing.on(), "the app's start-up enabled tracing from the setting"
    async with patchbay.client() as c:
        response = await c.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200 and len(response.headers["x-patchbay-trace-id"]) == 32
    # Routing's spans end before the response goes out (the request's own span just after its
    # last byte, so it is not waited for here); flushing sends the batch now.
    assert await asyncio.to_thread(tracing.flush)
    assert collector.refused == []
    spans = collector.spans()
    for expected in ("routing.plan", "routing.attempt", "upstream openai"):
        assert expected in spans
        assert spans[expected].trace_id.hex() == response.headers["x-patchbay-trace-id"]
