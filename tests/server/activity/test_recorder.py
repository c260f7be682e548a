"""The request log's writer and the notes the request path makes on the current entry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from providers.types import StreamEvent, TextDelta, Usage
from routing.trace import AttemptTrace
from server.accounts import Principal
from server.activity import recorder
from server.activity.recorder import RequestLog, close_entry, open_entry
from server.db import Database


@dataclass
class Cached:
    content_logging: bool


class FakeRegistry:
    """What the recorder reads of the registry: an org's entry if it is in memory."""

    def __init__(self, **orgs: bool) -> None:
        self.orgs = orgs

    def cached(self, org_id: str) -> Cached | None:
        return Cached(self.orgs[org_id]) if org_id in self.orgs else None


class Call:
    def __init__(self) -> None:
        self.trace = AttemptTrace(intent="chat")
        self.usage: Usage | None = Usage(input_tokens=1, output_tokens=2)


class Events:
    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)
        self.closed = False

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self

    async def __anext__(self) -> StreamEvent:
        if not self.texts:
            raise StopAsyncIteration
        return TextDelta(self.texts.pop(0))

    async def aclose(self) -> None:
        self.closed = True


def new_log(db: Database, registry: FakeRegistry | None = None, retention_days: int = 30) -> RequestLog:
    return RequestLog(db.sessions, retention_days=retention_days, registry=registry)  # type: ignore[arg-type]


async def test_retention_zero_turns_the_log_off(db: Database) -> None:
    log = new_log(db, retention_days=0)
    assert (
        not log.enabled
        and log.begin("chat.completions") is None
        and open_entry(log, "chat.completions") is None
    )


async def test_notes_without_an_open_entry_do_nothing() -> None:
    recorder.note_caller(Principal(key_id="key_1", org_id="org_1", agent_id=None))
    recorder.note_error("boom")
    events = Events("a")
    assert recorder.note_stream(Call(), events) is events
    assert recorder.current() is None


async def test_an_entry_without_an_org_is_not_kept(db: Database) -> None:
    log = new_log(db)
    opened = open_entry(log, "chat.completions")
    assert opened is not None
    close_entry(log, *opened)
    assert log.pending == 0 and recorder.current() is None


async def test_a_stream_gathers_its_completion_only_for_an_org_that_logs_content(db: Database) -> None:
    log = new_log(db, FakeRegistry(org_on=True, org_off=False))
    for org_id, keeps in (("org_on", True), ("org_off", False), ("org_not_loaded", False)):
        opened = open_entry(log, "chat.completions")
        assert opened is not None
        entry, token = opened
        recorder.note_caller(Principal(key_id="key_1", org_id=org_id, agent_id=None))
        events = Events("Hel", "lo")
        read = recorder.note_stream(Call(), events)
        assert (read is not events) is keeps
        assert [e.text async for e in read] == ["Hel", "lo"]  # type: ignore[union-attr]
        await read.aclose()  # type: ignore[attr-defined]
        assert events.closed
        close_entry(log, entry, token)
        row = entry.row_values()[1]
        assert (row["content_response"] == "Hello") is keeps
        assert (row["input_tokens"], row["output_tokens"]) == (1, 2)
    assert log.pending == 3 and await log.flush() == 3
