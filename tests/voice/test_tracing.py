"""A voice turn's steps as spans: `voice.stt`, then `voice.response` with `voice.llm` and one
`voice.tts` per spoken chunk, under the session's (here a stand-in for the WebSocket's) span;
no transcript or reply text in any of them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from foundation import tracing
from tests.voice.test_session import drain, feed, make_session, spoken_turn


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.enable(exporter, batch=False)
    yield exporter
    tracing.disable()


def _by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def _is_child(child: ReadableSpan, parent: ReadableSpan) -> bool:
    assert parent.context is not None
    return child.parent is not None and child.parent.span_id == parent.context.span_id


async def test_a_spoken_turn_is_stt_then_a_response_of_llm_and_tts(spans: InMemorySpanExporter) -> None:
    with tracing.step("session"):
        session = make_session()
        await feed(session, spoken_turn())
        await session.idle()
    drain(session)
    recorded = spans.get_finished_spans()
    (root,) = _by_name(recorded, "session")
    (stt,) = _by_name(recorded, "voice.stt")
    (response,) = _by_name(recorded, "voice.response")
    (llm,) = _by_name(recorded, "voice.llm")
    tts = _by_name(recorded, "voice.tts")
    assert _is_child(stt, root) and _is_child(response, root)
    assert _is_child(llm, response)
    assert len(tts) == 2 and all(_is_child(t, response) for t in tts)  # two spoken chunks
    turn_ids = {s.attributes["patchbay.turn_id"] for s in (stt, response, llm, *tts) if s.attributes}
    assert len(turn_ids) == 1
    assert all(s.status.status_code.name != "ERROR" for s in recorded)
    text = "\n".join(s.to_json() for s in recorded)
    for words in ("book a table", "Your table is booked"):
        assert words not in text


def test_off_a_step_is_one_shared_nothing() -> None:
    assert not tracing.on()
    with tracing.step("voice.llm") as span:
        assert span is None
    assert tracing.step("a") is tracing.step("b")
    assert tracing.start("x") is None and tracing.trace_id() is None
