"""The SSE decoder against the framings providers actually send."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from providers.contract import ErrorClass
from providers.errors import ProviderError
from providers.sse import MAX_EVENT_BYTES, SSEDecoder, SSEEvent, aiter_sse


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


_LINE_TEXT = st.text(st.characters(exclude_characters="\r\n", codec="utf-8"), max_size=12)
_DATA_LINE = _LINE_TEXT.map(lambda t: f"data: {t}")
_FIELD_LINE = st.one_of(
    _DATA_LINE,
    _LINE_TEXT.map(lambda t: f"data:{t}"),
    _LINE_TEXT.map(lambda t: f"event: {t}"),
    _LINE_TEXT.map(lambda t: f"id: {t}"),
    st.integers(0, 99_999).map(lambda n: f"retry: {n}"),
    _LINE_TEXT.map(lambda t: f": {t}"),
)
# An event: a few field lines, mostly a `data: ...` line last, then the blank line.
_EVENT_LINES = st.tuples(st.lists(_FIELD_LINE, max_size=3), st.one_of(st.none(), _DATA_LINE)).map(
    lambda parts: (
        [f"{line}\n" for line in [*parts[0], *([parts[1]] if parts[1] is not None else [])]] + ["\n"]
    )
)
# How an event arrives: in one read, a read per line, or its lines one by one and then its last
# line with the blank line in one read (the shortcut's shape, after whatever the event set).
_ARRIVAL = st.sampled_from(("whole", "lines", "tail"))


def _reads(lines: list[str], arrival: str) -> list[str]:
    if arrival == "whole":
        return ["".join(lines)]
    if arrival == "lines" or len(lines) < 2:
        return lines
    return [*lines[:-2], "".join(lines[-2:])]


@given(events=st.lists(st.tuples(_EVENT_LINES, _ARRIVAL), min_size=1, max_size=8), crlf=st.booleans())
# The shortcut's read after each field it must carry over or hold back for.
@example(events=[(["retry: 5\n", "data: x\n", "\n"], "tail"), (["data: y\n", "\n"], "whole")], crlf=False)
@example(events=[(["id: 7\n", "data: x\n", "\n"], "tail"), (["data: y\n", "\n"], "whole")], crlf=False)
@example(events=[(["event: e\n", "data: x\n", "\n"], "tail")], crlf=False)
@example(events=[(["data: a\n", "data: b\n", "\n"], "tail")], crlf=False)
@example(
    events=[(["data: x\n", "\n"], "whole"), (["data: \n", "\n"], "whole"), (["data: z\n", "\n"], "whole")],
    crlf=False,
)
def test_reads_of_whole_lines_decode_as_the_same_bytes_byte_by_byte(
    events: list[tuple[list[str], str]], crlf: bool
) -> None:
    # Reads of whole lines take the one-line-event shortcut where it applies (a read of exactly
    # `data: ...` and the blank line, nothing pending); one byte per read never can, so the two
    # agree only if the shortcut gives exactly the general path's events: the event name, id
    # and retry the stream set before, and nothing carried into the next event.
    reads = [read for lines, arrival in events for read in _reads(lines, arrival)]
    raw = [(read.replace("\n", "\r\n") if crlf else read).encode() for read in reads]
    data = b"".join(raw)
    byte_by_byte = decode_all([data[i : i + 1] for i in range(len(data))])
    assert decode_all(raw) == byte_by_byte
    # All of it in one read: several whole events at once, as when reads fall behind the stream.
    assert decode_all([data]) == byte_by_byte


@pytest.mark.parametrize("field", [b"retry: 5\n", b"id: 7\n", b"event: e\n", b"data: a\n"])
def test_several_whole_events_in_one_read_after_a_field_line(field: bytes) -> None:
    # The shortcut for reads of whole one-line events, with a field line read before them: the
    # field belongs to the first event only (an id to every later one too, as the spec says).
    reads = [field, b"data: x\n\ndata: y\n\n", b"data: z\n\n"]
    data = b"".join(reads)
    assert decode_all(reads) == decode_all([data[i : i + 1] for i in range(len(data))])


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


def test_one_event_may_hold_up_to_its_limit_and_no_more() -> None:
    # Events of 60 characters each, far past the limit in all: each is dispatched and forgotten.
    decoder = SSEDecoder(provider="p", limit=64)
    events = []
    for _ in range(20):
        events += decoder.feed(b"data: " + b"a" * 30 + b"\ndata: " + b"b" * 30 + b"\n\n")
    assert len(events) == 20 and events[0].data == "a" * 30 + "\n" + "b" * 30


@pytest.mark.parametrize(
    "chunks",
    [
        [b"data: " + b"x" * 40, b"x" * 40],  # a line that never ends, in two reads
        [b"data: " + b"x" * 80 + b"\r"],  # a held trailing `\r` counts too
        [b"data: " + b"x" * 40 + b"\n", b"data: " + b"x" * 40 + b"\n"],  # an event that never ends
        [b": keep-alive\ndata: " + b"x" * 70],  # the rest after a complete line
    ],
)
def test_an_event_past_the_limit_is_a_server_error_naming_the_provider(chunks: list[bytes]) -> None:
    decoder = SSEDecoder(provider="acme", limit=64)
    with pytest.raises(ProviderError) as info:
        for chunk in chunks:
            decoder.feed(chunk)
    assert info.value.error_class is ErrorClass.SERVER_ERROR and info.value.provider == "acme"
    assert "more than 64 bytes" in info.value.message


async def test_aiter_sse_names_the_provider_in_the_limit_error() -> None:
    async def endless() -> AsyncIterator[bytes]:
        yield b"data: "
        while True:
            yield b"x" * 2**20

    with pytest.raises(ProviderError) as info:
        _ = [event async for event in aiter_sse(endless(), provider="acme")]
    assert info.value.provider == "acme" and f"{MAX_EVENT_BYTES:,} bytes" in info.value.message
