"""Monthly budgets and per-key spend limits: the rule (`billing.spend`), the in-memory caps
(`billing.spend_caps`) on both databases, and the totals the ledger keeps with each settle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from billing.credits_preflight import LedgerPreflight
from billing.ledger import Ledger
from billing.ledger_tables import ENTRIES, EntryKind
from billing.preflight import InsufficientCreditsError, PreflightRequest
from billing.prices import Price
from billing.spend import BudgetExceededError, SpendLimitExceededError, Usage, month_of
from billing.spend_caps import SpendCaps
from billing.spend_store import add_spent, set_cap, spent_in
from providers.contract import BillingSource
from providers.types import Usage as Tokens
from server.db import Database
from tests.billing.ledger_fakes import T0, Clock

ORG = "org_spend"
KEY = "key_spend"
USD = 1_000_000


def test_month_of_is_the_utc_calendar_month() -> None:
    assert month_of(datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)) == "2026-12"
    assert month_of(datetime(2027, 1, 1, tzinfo=UTC)) == "2027-01"


@pytest.mark.parametrize(
    ("limit", "spent", "reserved", "hold", "refused"),
    [
        (100, 0, 0, 100, False),  # exactly the cap: allowed
        (100, 0, 0, 101, True),  # one micro-USD over
        (100, 60, 0, 40, False),
        (100, 60, 30, 11, True),  # requests in flight count
        (100, 99, 0, 0, False),  # a chargeable request whose hold is 0 needs one micro-USD of room
        (100, 100, 0, 0, True),  # ... so a cap that is reached refuses it
        (0, 0, 0, 0, True),  # a budget of 0 refuses every chargeable request
    ],
)
def test_the_rule(limit: int, spent: int, reserved: int, hold: int, refused: bool) -> None:
    assert Usage(limit, spent, reserved).refuses(hold) is refused


def test_the_errors_are_402s_with_their_own_codes_and_say_how_to_fix() -> None:
    budget = BudgetExceededError(ORG, Usage(10, 10), 5)
    limit = SpendLimitExceededError(ORG, KEY, Usage(10, 10), 5)
    assert isinstance(budget, InsufficientCreditsError) and isinstance(limit, InsufficientCreditsError)
    assert (budget.code, limit.code) == ("budget_exceeded", "spend_limit_exceeded")
    assert f"patchbay org update {ORG} --monthly-budget USD" in str(budget)
    assert f"patchbay apikey update --org {ORG} {KEY} --spend-limit USD" in str(limit)


async def _cap(db: Database, limit: int | None, key: str | None = None, org: str = ORG) -> None:
    async with db.session() as s:
        await set_cap(s, org, key, limit, T0)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def caps(db: Database, clock: Clock) -> SpendCaps:
    return SpendCaps(db.sessions, clock=clock)


@pytest.fixture
def loads(caps: SpendCaps, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The orgs `SpendCaps` read from the database on the request path."""
    import billing.spend_caps as module

    seen: list[str] = []
    real = module.load

    async def counted(session: Any, org_ids: Any, month: str) -> Any:
        seen.extend(org_ids)
        return await real(session, org_ids, month)

    monkeypatch.setattr(module, "load", counted)
    return seen


async def test_the_budget_refuses_what_would_exceed_it_from_memory(
    db: Database, caps: SpendCaps, loads: list[str]
) -> None:
    await _cap(db, 10 * USD)
    first = await caps.reserve(ORG, None, 6 * USD)
    with pytest.raises(BudgetExceededError):
        await caps.reserve(ORG, None, 5 * USD)  # 6 in flight + 5 > 10
    caps.close(first, 4 * USD)  # charged less than held
    second = await caps.reserve(ORG, None, 6 * USD)  # 4 spent + 6 = 10: allowed
    caps.close(second, 6 * USD)
    with pytest.raises(BudgetExceededError) as refused:
        await caps.reserve(ORG, None, 0)  # reached: even a hold of 0 is refused
    assert refused.value.usage == Usage(10 * USD, 10 * USD, 0)
    assert caps.spent(ORG) == 10 * USD
    assert loads == [ORG]  # one read, on the first request; none after


async def test_a_key_limit_counts_only_that_keys_spend(db: Database, caps: SpendCaps) -> None:
    await _cap(db, 3 * USD, KEY)
    other = await caps.reserve(ORG, "key_other", 50 * USD)  # no limit of its own, no budget
    caps.close(other, 50 * USD)
    mine = await caps.reserve(ORG, KEY, 3 * USD)
    caps.close(mine, 3 * USD)
    with pytest.raises(SpendLimitExceededError):
        await caps.reserve(ORG, KEY, 1)
    assert (caps.spent(ORG), caps.spent(ORG, KEY), caps.spent(ORG, "key_other")) == (
        53 * USD,
        3 * USD,
        50 * USD,
    )


async def test_a_refused_or_released_request_leaves_nothing_reserved(db: Database, caps: SpendCaps) -> None:
    await _cap(db, 10 * USD)
    await _cap(db, 10 * USD, KEY)
    held = await caps.reserve(ORG, KEY, 10 * USD)
    with pytest.raises(BudgetExceededError):
        await caps.reserve(ORG, KEY, 1)
    caps.close(held, 0)  # released: nothing charged
    caps.close(await caps.reserve(ORG, KEY, 10 * USD), 0)
    assert caps.spent(ORG) == caps.spent(ORG, KEY) == 0


async def test_a_new_month_starts_from_nothing(db: Database, caps: SpendCaps, clock: Clock) -> None:
    clock.now = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    await _cap(db, 5 * USD)
    caps.close(await caps.reserve(ORG, None, 5 * USD), 5 * USD)
    with pytest.raises(BudgetExceededError):
        await caps.reserve(ORG, None, 1)
    clock.now += timedelta(minutes=1)  # 2026-12-01 00:00 UTC
    caps.close(await caps.reserve(ORG, None, 5 * USD), 1 * USD)
    assert caps.spent(ORG) == 1 * USD


async def test_the_poll_brings_other_processes_charges_and_cap_changes(
    db: Database, caps: SpendCaps, clock: Clock
) -> None:
    await _cap(db, 10 * USD)
    caps.close(
        await caps.reserve(ORG, None, 2 * USD), 2 * USD
    )  # this process: 2 (not in the db: no ledger here)
    async with db.session() as s:
        await add_spent(s, ORG, KEY, month_of(clock()), 7 * USD)  # another replica's settles: 7
        await set_cap(s, ORG, KEY, 1 * USD, T0)
    async with db.session() as s:
        await caps.poll(s)
    # Totals only grow: the larger of what this process counted and what the database says.
    assert (caps.spent(ORG), caps.spent(ORG, KEY)) == (7 * USD, 7 * USD)
    with pytest.raises(SpendLimitExceededError):
        await caps.reserve(ORG, KEY, 1)
    caps.close(await caps.reserve(ORG, None, 3 * USD), 0)
    with pytest.raises(BudgetExceededError):
        await caps.reserve(ORG, None, 3 * USD + 1)
    await _cap(db, None)  # the budget removed elsewhere
    async with db.session() as s:
        await caps.poll(s)
    caps.close(await caps.reserve(ORG, None, 100 * USD), 0)


async def test_drop_org_reads_the_caps_again_on_the_next_request(
    db: Database, caps: SpendCaps, loads: list[str]
) -> None:
    caps.close(await caps.reserve(ORG, None, 5 * USD), 0)
    await _cap(db, 1 * USD)
    caps.close(await caps.reserve(ORG, None, 5 * USD), 0)  # not seen yet: no read per request
    caps.drop_org(ORG)
    with pytest.raises(BudgetExceededError):
        await caps.reserve(ORG, None, 5 * USD)
    assert loads == [ORG, ORG]


async def test_the_ledger_keeps_the_months_totals_with_each_settle(db: Database, clock: Clock) -> None:
    ledger = Ledger(db.sessions, hold_ttl=timedelta(seconds=60), clock=clock)
    await ledger.grant(ORG, 10 * USD, "grant")
    hold = await ledger.hold(ORG, 3 * USD, "h1")
    await ledger.settle(hold.id, 2 * USD, "s1", api_key_id=KEY)
    await ledger.settle(hold.id, 2 * USD, "s1", api_key_id=KEY)  # a replay adds nothing
    await ledger.charge(ORG, 1 * USD, "c1")  # no key: the org's total only
    await ledger.charge(ORG, 0, "c0", api_key_id=KEY)
    clock.now = T0 + timedelta(days=31)  # the next month
    await ledger.charge(ORG, 4 * USD, "c2", api_key_id=KEY)
    async with db.session() as s:
        assert await spent_in(s, ORG, month_of(T0)) == (3 * USD, {KEY: 2 * USD})
        assert await spent_in(s, ORG, month_of(clock.now)) == (4 * USD, {KEY: 4 * USD})
        settled = await s.scalar(
            select(func.sum(ENTRIES.c.amount)).where(
                ENTRIES.c.org_id == ORG, ENTRIES.c.kind == EntryKind.SETTLE.value
            )
        )
    assert settled == 7 * USD  # the totals add up to the settle entries


async def test_the_preflight_checks_the_caps_before_the_ledger_and_counts_the_charge(
    db: Database, caps: SpendCaps, clock: Clock
) -> None:
    ledger = Ledger(db.sessions, hold_ttl=timedelta(seconds=60), clock=clock)
    preflight = LedgerPreflight(ledger, caps)
    await ledger.grant(ORG, 100 * USD, "grant")
    price = Price(input=1 * USD, output=1 * USD)  # 1 USD per 1M tokens
    ask = PreflightRequest(
        org_id=ORG,
        tier="enterprise",
        segment="llm",
        intent="chat",
        max_output_tokens=1_000_000,  # a hold of 1 USD
        offers=((BillingSource.PLATFORM, price),),
        api_key_id=KEY,
    )
    await _cap(db, 1 * USD + 500_000, KEY)
    hold = await preflight.hold(ask)
    charged = await hold.settle(
        BillingSource.PLATFORM, Tokens(input_tokens=0, output_tokens=600_000), price=price
    )
    assert charged == 600_000 and caps.spent(ORG, KEY) == 600_000
    with pytest.raises(SpendLimitExceededError):
        await preflight.hold(ask)  # 0.6 spent + a 1 USD hold > 1.5
    assert (await ledger.balance(ORG)).held == 0  # refused before the ledger was asked
    # A BYOK request on a tier with no per-request charge is never checked, whatever the cap.
    await _cap(db, 0)
    caps.drop_org(ORG)
    byok = await preflight.hold(
        PreflightRequest(
            org_id=ORG,
            tier="enterprise",
            segment="llm",
            intent="chat",
            offers=((BillingSource.BYOK, price),),
            api_key_id=KEY,
        )
    )
    assert await byok.settle(BillingSource.BYOK, Tokens(input_tokens=10, output_tokens=10), price=price) == 0


async def test_a_reservation_never_closed_stops_counting_after_the_hold_ttl(
    db: Database, clock: Clock
) -> None:
    caps = SpendCaps(db.sessions, clock=clock, hold_ttl=timedelta(seconds=60))
    await _cap(db, 10 * USD)
    lost = await caps.reserve(ORG, None, 10 * USD)  # its request never settles nor releases
    with pytest.raises(BudgetExceededError):
        await caps.reserve(ORG, None, 1)
    clock.advance(seconds=60)
    async with db.session() as s:
        await caps.poll(s)
    caps.close(await caps.reserve(ORG, None, 10 * USD), 0)
    caps.close(lost, 0)  # closing it late takes nothing off twice
    held = await caps.reserve(ORG, None, 10 * USD)
    with pytest.raises(BudgetExceededError):
        await caps.reserve(ORG, None, 1)
    caps.close(held, 0)
