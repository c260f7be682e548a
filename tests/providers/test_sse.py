"""The SSE decoder against the framings providers actually send."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest

from providers.sse import SSEDecoder, SSEEvent, aiter_sse


def decode_all(chunks: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.end())
    return events


OPENROUTER_STREAM = (
    b": OPENROUTER PROCESSING\n\n"
    b'data: {"a":1}\n\n'
    b": OPENROUTER PROCESSING\n\n"
    b'data: {"b":"\xc3\xa9t\xc3\xa9 \xf0\x9f\x8e\x89"}\n\n'
    b"data: [DONE]\n\n"
)


def test_data_lines_and_comments() -> None:
    events = decode_all([OPENROUTER_STREAM])
    assert [e.data for e in events] == ['{"a":1}', '{"b":"été 🎉"}', "[DONE]"]
    assert all(e.event == "message" for e in events)


@pytest.mark.parametrize("seed", range(25))
def test_any_split_gives_the_same_events(seed: int) -> None:
    rng = random.Random(seed)
    data = OPENROUTER_STREAM.replace(b"\n", b"\r\n") if seed % 2 else OPENROUTER_STREAM
    cuts = sorted(rng.sample(range(1, len(data)), k=min(12, len(data) - 1)))
    chunks = [data[i:j] for i, j in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    assert decode_all(chunks) == decode_all([OPENROUTER_STREAM])


def test_byte_by_byte_including_split_crlf_and_utf8() -> None:
    data = OPENROUTER_STREAM.replace(b"\n", b"\r\n")
    assert decode_all([data[i : i + 1] for i in range(len(data))]) == decode_all([OPENROUTER_STREAM])


def test_named_events_multiline_data_id_retry() -> None:
    stream = (
        b"event: content_block_delta\r\n"
        b"id: 7\r\n"
        b"retry: 1500\r\n"
        b"data: line one\r\n"
        b"data:line two\r\n"
        b"\r\n"
        b"event: ping\n"
        b"data: {}\n\n"
    )
    first, second = decode_all([stream])
    assert first == SSEEvent(data="line one\nline two", event="content_block_delta", id="7", retry=1500)
    assert second.event == "ping"
    assert second.data == "{}"
    # The last event id persists, as the spec says.
    assert second.id == "7"


def test_lone_cr_line_ends() -> None:
    assert [e.data for e in decode_all([b"data: x\r\rdata: y\r\r"])] == ["x", "y"]


def test_event_without_data_is_not_dispatched_and_resets_name() -> None:
    events = decode_all([b"event: lonely\n\ndata: after\n\n"])
    assert events == [SSEEvent(data="after")]


def test_field_without_colon_and_unknown_fields() -> None:
    events = decode_all([b"data\nfoo: bar\n\n"])
    assert events == [SSEEvent(data="")]


def test_leading_bom_is_ignored() -> None:
    assert decode_all([b"\xef\xbb\xbfdata: x\n\n"]) == [SSEEvent(data="x")]


def test_end_flushes_unterminated_final_event() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"last":true}') == []
    assert decoder.end() == [SSEEvent(data='{"last":true}')]


def test_feed_returns_nothing_until_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: part") == []
    assert decoder.feed(b"ial\n") == []
    assert decoder.feed(b"\n") == [SSEEvent(data="partial")]


async def test_aiter_sse() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"data: a\n", b"\ndata: b", b"\n\n"):
            yield part

    assert [e.data async for e in aiter_sse(chunks())] == ["a", "b"]
