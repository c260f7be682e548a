"""`Ledger.import_history`: the predecessor's charges as history, on both databases; and the
exclusion both ways between them and the request path (`billing.credits_preflight`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from billing.credits_preflight import LedgerPreflight
from billing.ledger import Ledger
from billing.ledger_history import Status
from billing.ledger_tables import ENTRIES, EntryKind
from billing.ledger_types import RequestAlreadyChargedError
from billing.legacy_billing import LegacyRow, parse_lines
from billing.preflight import PreflightRequest
from billing.prices import Price
from foundation.audit import AuditEvent
from foundation.errors import RequestError
from providers.contract import BillingSource
from providers.types import Usage
from server.db import Database
from tests.billing.ledger_fakes import Clock, assert_consistent, entry_count

FIXTURE = Path(__file__).parent / "data" / "legacy_billing.jsonl"
ORG = "org_acme"
USD = 1_000_000
MINI = Price.from_usd({"input": "0.15", "output": "0.60"})
HISTORY_AT = datetime(2025, 12, 1, tzinfo=UTC)


def row(request_id: str, cost: int, *, line: int = 1, org_id: str = ORG) -> LegacyRow:
    return LegacyRow(line, org_id, request_id, "openai/gpt-4o-mini", 10, 5, cost, HISTORY_AT)


def fixture_rows(org_id: str) -> list[LegacyRow]:
    parsed = parse_lines(FIXTURE.read_text().splitlines(), now=datetime(2026, 12, 1, tzinfo=UTC))
    return [r for r in parsed.rows if r.org_id == org_id]


def surcharged(request_id: str) -> PreflightRequest:
    """A request the `starter` tier charges (a 10% BYOK surcharge): the request path at work."""
    return PreflightRequest(
        org_id=ORG,
        tier="starter",
        segment="llm",
        intent="chat",
        max_output_tokens=1_000,
        input_tokens_estimate=1_200,
        offers=((BillingSource.BYOK, MINI),),
        request_id=request_id,
    )


USAGE = Usage(input_tokens=1_000, output_tokens=500)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(db: Database, clock: Clock) -> Ledger:
    return Ledger(db.sessions, hold_ttl=timedelta(seconds=60), clock=clock)


async def legacy_entries(db: Database) -> list[Any]:
    async with db.sessions() as session:
        query = (
            select(ENTRIES)
            .where(ENTRIES.c.idempotency_key.startswith("legacy:"))
            .order_by(ENTRIES.c.created_at)
        )
        return list((await session.execute(query)).all())


async def test_rows_become_settles_at_their_own_time_and_a_reimport_changes_nothing(
    db: Database, ledger: Ledger, clock: Clock
) -> None:
    await ledger.grant(ORG, 10 * USD, "legacy-credits")
    rows = fixture_rows(ORG)
    outcomes = await ledger.import_history(ORG, rows)
    assert [(o.line, o.status) for o in outcomes] == [(r.line, Status.IMPORTED) for r in rows]
    spent = 11_709 + 25 + 1 + 0
    balance = await assert_consistent(db, ledger, ORG)
    assert balance.balance == 10 * USD - spent  # = grants - costs, to the micro-dollar

    entries = await legacy_entries(db)
    assert [(e.kind, e.amount, e.idempotency_key, e.hold_id) for e in entries] == [
        (EntryKind.SETTLE.value, r.cost, f"legacy:{r.request_id}", None) for r in rows
    ]
    assert [e.created_at for e in entries] == [r.at for r in rows]  # the predecessor's time
    first = entries[0].details
    assert first["model"] == "anthropic/claude-sonnet-4" and first["request_id"] == rows[0].request_id
    assert (first["prompt_tokens"], first["completion_tokens"], first["source"]) == (1843, 412, "legacy")
    assert first["imported_at"] == clock.now.isoformat()
    assert [o.entry_id for o in outcomes] == [e.id for e in entries]

    before = await entry_count(db, ORG)
    clock.advance(hours=1)
    again = await ledger.import_history(ORG, rows)
    assert [o.status for o in again] == [Status.SKIPPED_DUPLICATE] * len(rows)
    assert [o.entry_id for o in again] == [e.id for e in entries]
    assert await entry_count(db, ORG) == before
    assert (await assert_consistent(db, ledger, ORG)).balance == balance.balance
    async with db.sessions() as session:
        audit = (
            await session.scalars(select(AuditEvent).where(AuditEvent.action == "credits.legacy_import"))
        ).all()
    assert [(a.org_id, a.details) for a in audit] == [
        (ORG, {"entries": "4", "amount_usd": "0.011735", "lines": "1-4"})
    ]


async def test_exact_micro_dollars_at_both_ends(db: Database, ledger: Ledger) -> None:
    await ledger.grant("org_globex", 1_235 * USD, "legacy-credits")
    rows = fixture_rows("org_globex")
    assert [r.cost for r in rows] == [1_234_567_891, 3_736]
    await ledger.import_history("org_globex", rows)
    balance = await assert_consistent(db, ledger, "org_globex")
    assert balance.balance == 1_235_000_000 - 1_234_567_891 - 3_736 == 428_373
    await ledger.grant(ORG, 1, "one-micro")
    await ledger.import_history(ORG, [row("tiny", 1)])
    assert (await assert_consistent(db, ledger, ORG)).balance == 0


async def test_a_request_id_the_request_path_settled_is_skipped(db: Database, ledger: Ledger) -> None:
    await ledger.grant(ORG, USD, "credits")
    preflight = LedgerPreflight(ledger)
    hold = await preflight.hold(surcharged("req_both"))
    charged = await hold.settle(BillingSource.BYOK, USAGE, price=MINI)
    assert charged > 0
    # A request path charge of 0 is a settle too: that request id was billed by Patchbay.
    zero = await preflight.hold(surcharged("req_zero"))
    assert await zero.settle(BillingSource.BYOK, Usage(), price=MINI) == 0
    before = await entry_count(db, ORG)

    outcomes = await ledger.import_history(
        ORG, [row("req_both", 5_000, line=1), row("req_zero", 7, line=2), row("req_bothX", 9, line=3)]
    )
    assert [(o.status, o.message) for o in outcomes[:2]] == [
        (Status.SKIPPED_CHARGED, "charged by Patchbay's request path")
    ] * 2
    assert outcomes[0].entry_id is not None and outcomes[0].entry_id.startswith("led_")
    assert outcomes[2].status is Status.IMPORTED  # a longer id sharing the prefix is another request
    assert await entry_count(db, ORG) == before + 1
    assert (await assert_consistent(db, ledger, ORG)).balance == USD - charged - 9


async def test_a_request_in_flight_is_an_error_and_a_released_one_is_imported(
    db: Database, ledger: Ledger, clock: Clock
) -> None:
    await ledger.grant(ORG, USD, "credits")
    preflight = LedgerPreflight(ledger)
    open_hold = await preflight.hold(surcharged("req_open"))
    released = await preflight.hold(surcharged("req_released"))
    await released.release()
    outcomes = await ledger.import_history(
        ORG, [row("req_open", 10, line=1), row("req_released", 20, line=2)]
    )
    assert outcomes[0].status is Status.ERROR
    assert outcomes[0].message is not None and f"hold {open_hold.hold_id} is open" in outcomes[0].message
    assert outcomes[1].status is Status.IMPORTED
    # Once the open one settles it counts as charged by Patchbay; importing again skips it.
    await open_hold.settle(BillingSource.BYOK, USAGE, price=MINI)
    again = await ledger.import_history(ORG, [row("req_open", 10, line=1), row("req_released", 20, line=2)])
    assert [o.status for o in again] == [Status.SKIPPED_CHARGED, Status.SKIPPED_DUPLICATE]
    await assert_consistent(db, ledger, ORG)


async def test_an_imported_request_id_is_never_charged_by_the_request_path(
    db: Database, ledger: Ledger, clock: Clock
) -> None:
    await ledger.grant(ORG, USD, "credits")
    await ledger.import_history(ORG, [row("req_legacy", 1_000)])
    before = await assert_consistent(db, ledger, ORG)
    count = await entry_count(db, ORG)
    preflight = LedgerPreflight(ledger)
    with pytest.raises(RequestAlreadyChargedError, match="req_legacy") as refused:
        await preflight.hold(surcharged("req_legacy"))
    assert refused.value.code == "request_already_charged"
    with pytest.raises(RequestAlreadyChargedError):
        await ledger.charge(ORG, 5, "pf:req_legacy:tts:at_1:charge", request_id="req_legacy")
    assert await entry_count(db, ORG) == count
    assert await assert_consistent(db, ledger, ORG) == before
    # Other ids are charged as ever.
    hold = await preflight.hold(surcharged("req_new"))
    assert await hold.settle(BillingSource.BYOK, USAGE, price=MINI) > 0


async def test_a_segment_whose_hold_expired_before_the_import_is_not_charged_again(
    db: Database, ledger: Ledger, clock: Clock
) -> None:
    await ledger.grant(ORG, USD, "credits")
    hold = await LedgerPreflight(ledger).hold(surcharged("req_slow"))
    clock.advance(seconds=61)
    assert len(await ledger.release_expired(clock.now)) == 1
    [imported] = await ledger.import_history(ORG, [row("req_slow", 300)])
    assert imported.status is Status.IMPORTED  # the released hold charged nothing
    # The segment ends late: its settle falls back to a charge, which the import already made.
    assert await hold.settle(BillingSource.BYOK, USAGE, price=MINI) == 0
    assert (await assert_consistent(db, ledger, ORG)).balance == USD - 300


async def test_what_the_balance_cannot_cover_or_contradicts_an_import_is_an_error_writing_nothing(
    db: Database, ledger: Ledger
) -> None:
    await ledger.grant(ORG, 100, "credits")
    outcomes = await ledger.import_history(
        ORG, [row("a", 60, line=1), row("b", 60, line=2), row("c", 40, line=3)]
    )
    assert [o.status for o in outcomes] == [Status.IMPORTED, Status.ERROR, Status.IMPORTED]
    assert outcomes[1].message is not None and "available 0.00004 USD cannot cover" in outcomes[1].message
    assert "patchbay credits grant" in outcomes[1].message
    assert (await assert_consistent(db, ledger, ORG)).balance == 0
    count = await entry_count(db, ORG)
    [changed] = await ledger.import_history(ORG, [row("a", 61, line=7)])
    assert changed.status is Status.ERROR and changed.line == 7
    assert changed.message is not None and "imported before as a settle of 0.00006 USD" in changed.message
    assert await entry_count(db, ORG) == count
    # A grant later, and the same file again: only the missing row is written.
    await ledger.grant(ORG, 60, "more")
    again = await ledger.import_history(ORG, [row("a", 60), row("b", 60), row("c", 40)])
    assert [o.status for o in again] == [Status.SKIPPED_DUPLICATE, Status.IMPORTED, Status.SKIPPED_DUPLICATE]
    assert (await assert_consistent(db, ledger, ORG)).balance == 0


async def test_a_dry_run_decides_alike_and_writes_nothing(db: Database, ledger: Ledger) -> None:
    await ledger.grant(ORG, 100, "credits")
    await ledger.import_history(ORG, [row("done", 10)])
    rows = [row("done", 10, line=1), row("new", 80, line=2), row("too-much", 20, line=3)]
    count = await entry_count(db)
    dry = await ledger.import_history(ORG, rows, dry_run=True)
    assert [o.status for o in dry] == [Status.SKIPPED_DUPLICATE, Status.IMPORTED, Status.ERROR]
    assert dry[1].entry_id is None
    assert await entry_count(db) == count
    assert (await ledger.balance(ORG)).balance == 90
    real = await ledger.import_history(ORG, rows)
    assert [o.status for o in real] == [o.status for o in dry]


async def test_callers_may_not_use_the_legacy_key_space(db: Database, ledger: Ledger) -> None:
    with pytest.raises(RequestError, match="legacy import's"):
        await ledger.grant(ORG, USD, "legacy:req_1")
    assert await entry_count(db) == 0


@pytest.fixture
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    yield seen
    event.remove(db.engine.sync_engine, "before_cursor_execute", count)


async def test_the_request_paths_check_adds_no_statement_to_a_hold(
    db: Database, ledger: Ledger, statements: list[str]
) -> None:
    await ledger.grant(ORG, USD, "credits")
    del statements[:]
    await ledger.hold(ORG, 100, "pf:-:llm:at_1")
    without = len(statements)
    del statements[:]
    await ledger.hold(ORG, 100, "pf:req_9:llm:at_2", request_id="req_9")
    assert len(statements) == without
