"""A realtime call's trace end to end through a served Patchbay: the turn's spans hang under the
WebSocket's span, and a call is sampled as a whole (`PATCHBAY_OTEL_SAMPLE_RATIO`)."""

from __future__ import annotations

from typing import Any

from foundation import tracing
from tests.emulators.openai import OpenAIEmulator, Scenario
from tests.server.activity.recorded import install
from tests.server.realtime.conftest import Client, Patchbay
from tests.spans import SpansUntil

SOCKET_SPAN = "WEBSOCKET /v1/realtime"


async def one_text_turn(connect: Any, llm: OpenAIEmulator) -> None:
    llm.enqueue(Scenario(text="Booked for seven."))
    client: Client = await connect()
    await client.until("session.created")
    await client.send("session.update", session={"type": "realtime", "output_modalities": ["text"]})
    await client.until("session.updated")
    await client.send("response.create")
    await client.until("response.done")
    await client.ws.close()


async def test_a_sampled_call_is_one_trace_under_its_socket(
    connect: Any, llm: OpenAIEmulator, patchbay: Patchbay
) -> None:
    exporter = SpansUntil(SOCKET_SPAN)
    tracing.enable(exporter, batch=False, ratio=1.0)
    try:
        await one_text_turn(connect, llm)
        await exporter.ended()
    finally:
        tracing.disable()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    socket = spans[SOCKET_SPAN]
    assert socket.parent is None and socket.context is not None
    assert {"voice.response", "voice.llm", "routing.plan", "routing.attempt", "upstream openai"} <= set(spans)
    assert {s.context.trace_id for s in spans.values() if s.context} == {socket.context.trace_id}
    response = spans["voice.response"]
    assert response.parent is not None and response.parent.span_id == socket.context.span_id


async def test_a_call_left_out_records_no_span_of_any_turn(
    connect: Any, llm: OpenAIEmulator, patchbay: Patchbay
) -> None:
    log = await install(patchbay.services)
    exporter = SpansUntil(SOCKET_SPAN)
    tracing.enable(exporter, batch=False, ratio=0.0)
    try:
        await one_text_turn(connect, llm)
        await log.next()  # the turn's request-log entry
        await log.next()  # the session's, kept when the call has ended
    finally:
        tracing.disable()
    assert exporter.get_finished_spans() == ()
