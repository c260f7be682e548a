"""`billing.credits_preflight.LedgerPreflight`: what is held, settled and released, on both databases.

Platform connections do not exist yet, so the platform cases pass the sources and prices the
router would (a fake catalog price), as `PreflightRequest` carries them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event

from billing.credits_preflight import LedgerHold, LedgerPreflight, hold_for
from billing.ledger import Ledger
from billing.preflight import NO_HOLD, InsufficientCreditsError, PreflightRequest
from billing.prices import FREE, Price
from providers.contract import BillingSource
from providers.types import Usage
from server.db import Database
from tests.billing.ledger_fakes import Clock, assert_consistent, entry_count

ORG = "org_preflight"
USD = 1_000_000
MINI = Price.from_usd({"input": "0.15", "output": "0.60"})
Offers = tuple[tuple[BillingSource, Price | None], ...]
PLATFORM: Offers = ((BillingSource.PLATFORM, MINI),)
BYOK: Offers = ((BillingSource.BYOK, MINI),)


def _request(tier: str, offers: Offers | None, **kw: Any) -> PreflightRequest:
    fields: dict[str, Any] = {
        "org_id": ORG,
        "tier": tier,
        "segment": "llm",
        "intent": "chat",
        "requested_model": "openai/gpt-4o-mini",
        "max_output_tokens": 1_000,
        "input_tokens_estimate": 1_200,
        "offers": offers,
        "request_id": "req_1",
    }
    return PreflightRequest(**{**fields, **kw})


@pytest.fixture
def ledger(db: Database) -> Ledger:
    return Ledger(db.sessions, hold_ttl=timedelta(seconds=60), clock=Clock())


@pytest.fixture
def statements(db: Database) -> Iterator[list[str]]:
    """Every SQL statement the database sees while the test runs."""
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    yield seen
    event.remove(db.engine.sync_engine, "before_cursor_execute", count)


def test_the_hold_is_the_max_list_cost_through_the_tier() -> None:
    # docs/billing.md's example: 1,200 x 0.15 + 1,000 x 0.60 = 780 list, pro marks up 15%.
    assert hold_for(_request("pro", PLATFORM)) == 897
    assert hold_for(_request("enterprise", PLATFORM)) == 780
    # starter surcharges BYOK 10% of the notional price; pro, agency and enterprise charge nothing.
    assert hold_for(_request("starter", BYOK)) == 78
    assert [hold_for(_request(t, BYOK)) for t in ("pro", "agency", "enterprise")] == [None] * 3
    # The dearest candidate decides; an unpriced one holds the intent's ceiling (2 USD for chat).
    dear = Price.from_usd({"input": "3", "output": "15"})
    platform = BillingSource.PLATFORM
    assert hold_for(_request("enterprise", (*PLATFORM, (platform, dear)))) == 18_600
    assert hold_for(_request("enterprise", (*PLATFORM, (platform, None)))) == 2 * USD
    assert hold_for(_request("enterprise", PLATFORM, max_output_tokens=None)) == 2 * USD
    # Each candidate is charged at its own source: a dear BYOK model next to a cheap platform one
    # on `pro` holds for the platform one only; a free platform engine next to it holds nothing.
    assert hold_for(_request("pro", ((BillingSource.BYOK, dear), *PLATFORM))) == 897
    assert hold_for(_request("enterprise", ((BillingSource.BYOK, dear), (platform, FREE)))) == 0
    # Offers not known: every source the tier allows at the ceiling; an unknown tier is `free`.
    assert hold_for(_request("pro", None)) == 2_300_000
    assert hold_for(_request("no-such-tier", PLATFORM)) == 975


def test_a_tts_hold_covers_its_text_and_the_voice_fee_for_the_time_it_takes_to_say() -> None:
    # Its audio is not known before it runs: 180 characters are held as 18 s of speech.
    flash = Price.from_usd({"per_1m_chars": "60"})
    tts = {"segment": "tts", "intent": "tts", "max_output_tokens": None, "input_tokens_estimate": 0}
    said = {**tts, "audio_seconds": None, "characters": 180}
    platform = BillingSource.PLATFORM
    # pro: 180 x 60 = 10,800 list, +15% = 12,420; the voice fee 18 s x 0.005 USD/min = 1,500.
    assert hold_for(_request("pro", ((platform, flash),), **said)) == 12_420 + 1_500
    assert hold_for(_request("agency", ((platform, flash),), **said)) == 11_880  # no voice fee
    # The built-in engines cost nothing but the fee; a BYOK voice costs nothing on pro.
    assert hold_for(_request("pro", ((platform, FREE),), **said)) == 1_500
    assert hold_for(_request("pro", ((BillingSource.BYOK, flash),), **said)) is None
    # An STT segment's audio is known: its fee is held for exactly that.
    heard = {**tts, "segment": "stt", "intent": "stt", "audio_seconds": 4.2}
    assert hold_for(_request("pro", ((platform, FREE),), **heard)) == 350


async def test_a_byok_segment_on_a_tier_without_a_per_request_charge_never_touches_the_ledger(
    ledger: Ledger, statements: list[str]
) -> None:
    hold = await LedgerPreflight(ledger).hold(_request("enterprise", BYOK))
    assert hold is NO_HOLD
    assert await hold.settle(BillingSource.BYOK, Usage(input_tokens=10, output_tokens=10), price=MINI) == 0
    await hold.release()
    assert statements == []


async def test_a_platform_segment_holds_then_settles_its_cost_in_one_write_each(
    db: Database, ledger: Ledger
) -> None:
    await ledger.grant(ORG, 1 * USD, "grant")
    hold = await LedgerPreflight(ledger).hold(_request("pro", PLATFORM))
    assert isinstance(hold, LedgerHold) and hold.hold_id is not None
    assert (await ledger.balance(ORG)).held == 897
    charged = await hold.settle(
        BillingSource.PLATFORM, Usage(input_tokens=1_000, output_tokens=500), price=MINI
    )
    # 1,000 x 0.15 + 500 x 0.60 = 450 micro-USD list, +15%: 517.5, rounded up.
    assert charged == 518
    balance = await assert_consistent(db, ledger, ORG)
    assert (balance.balance, balance.held) == (USD - 518, 0)
    assert await entry_count(db, ORG) == 3  # grant, hold, settle


async def test_the_serving_source_decides_the_charge(db: Database, ledger: Ledger) -> None:
    await ledger.grant(ORG, 1 * USD, "grant")
    both = (*PLATFORM, *BYOK)
    hold = await LedgerPreflight(ledger).hold(_request("pro", both))
    assert (await ledger.balance(ORG)).held == 897
    # A BYOK connection served it on pro: nothing to pay, the hold goes back in the settle.
    assert (
        await hold.settle(BillingSource.BYOK, Usage(input_tokens=1_000, output_tokens=500), price=MINI) == 0
    )
    balance = await assert_consistent(db, ledger, ORG)
    assert (balance.balance, balance.held) == (USD, 0)


async def test_a_balance_that_cannot_cover_the_hold_is_refused_and_writes_nothing(
    db: Database, ledger: Ledger
) -> None:
    await ledger.grant(ORG, 500, "grant")
    with pytest.raises(InsufficientCreditsError) as refused:
        await LedgerPreflight(ledger).hold(_request("pro", PLATFORM))
    assert (refused.value.requested, refused.value.available) == (897, 500)
    assert await entry_count(db, ORG) == 1


async def test_a_byok_surcharge_is_held_and_settled(db: Database, ledger: Ledger) -> None:
    await ledger.grant(ORG, 1 * USD, "grant")
    hold = await LedgerPreflight(ledger).hold(_request("starter", BYOK))
    assert (await ledger.balance(ORG)).held == 78
    # 10% of 450 micro-USD notional: 45.
    assert (
        await hold.settle(BillingSource.BYOK, Usage(input_tokens=1_000, output_tokens=500), price=MINI) == 45
    )
    balance = await assert_consistent(db, ledger, ORG)
    assert (balance.balance, balance.held) == (USD - 45, 0)


async def test_a_released_hold_gives_everything_back(db: Database, ledger: Ledger) -> None:
    await ledger.grant(ORG, 1 * USD, "grant")
    hold = await LedgerPreflight(ledger).hold(_request("pro", PLATFORM))
    await hold.release()
    await hold.release()  # a second release changes nothing
    balance = await assert_consistent(db, ledger, ORG)
    assert (balance.balance, balance.held) == (USD, 0)
    assert await entry_count(db, ORG) == 3  # grant, hold, release


async def test_a_hold_the_sweeper_released_is_paid_by_a_charge(db: Database, ledger: Ledger) -> None:
    await ledger.grant(ORG, 1 * USD, "grant")
    hold = await LedgerPreflight(ledger).hold(_request("enterprise", PLATFORM))
    assert isinstance(hold, LedgerHold) and hold.hold_id is not None
    await ledger.release(hold.hold_id)
    assert (
        await hold.settle(BillingSource.PLATFORM, Usage(input_tokens=1_000, output_tokens=500), price=MINI)
        == 450
    )
    balance = await assert_consistent(db, ledger, ORG)
    assert (balance.balance, balance.held) == (USD - 450, 0)


async def test_each_hold_has_its_own_key(ledger: Ledger) -> None:
    await ledger.grant(ORG, 1 * USD, "grant")
    pf = LedgerPreflight(ledger)
    first, second = await pf.hold(_request("pro", PLATFORM)), await pf.hold(_request("pro", PLATFORM))
    assert isinstance(first, LedgerHold) and isinstance(second, LedgerHold)
    assert first.hold_id != second.hold_id
    assert (await ledger.balance(ORG)).held == 2 * 897


async def test_a_settle_outlives_its_callers_cancellation_which_then_goes_on(
    db: Database, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream's task is cancelled when its client leaves; landing mid-settle, that must not
    roll the settle back (the hold would expire unpaid). The settle ends, the caller gets
    what it charged, and the cancellation reaches the caller at its next await."""
    await ledger.grant(ORG, 1 * USD, "grant")
    hold = await LedgerPreflight(ledger).hold(_request("pro", PLATFORM))
    settle, writing, go_on = ledger.settle, asyncio.Event(), asyncio.Event()

    async def slow_settle(*args: Any, **kwargs: Any) -> Any:
        writing.set()
        await go_on.wait()
        return await settle(*args, **kwargs)

    monkeypatch.setattr(ledger, "settle", slow_settle)
    charged: list[int] = []

    async def caller() -> None:
        charged.append(
            await hold.settle(
                BillingSource.PLATFORM, Usage(input_tokens=1_000, output_tokens=500), price=MINI
            )
        )
        await asyncio.sleep(0)
        charged.append(-1)  # not reached: the cancellation goes on here

    task = asyncio.create_task(caller())
    await writing.wait()
    task.cancel()
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert charged == [518]
    balance = await assert_consistent(db, ledger, ORG)
    assert (balance.balance, balance.held) == (USD - 518, 0)


async def test_a_timeout_that_fires_mid_settle_is_still_a_timeout(
    db: Database, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ledger.grant(ORG, 1 * USD, "grant")
    hold = await LedgerPreflight(ledger).hold(_request("pro", PLATFORM))
    settle, writing, go_on = ledger.settle, asyncio.Event(), asyncio.Event()

    async def slow_settle(*args: Any, **kwargs: Any) -> Any:
        writing.set()
        await go_on.wait()
        return await settle(*args, **kwargs)

    monkeypatch.setattr(ledger, "settle", slow_settle)
    charged: list[int] = []

    async def caller() -> None:
        async with asyncio.timeout_at(asyncio.get_running_loop().time()):  # already due: fires at once
            charged.append(
                await hold.settle(
                    BillingSource.PLATFORM, Usage(input_tokens=1_000, output_tokens=500), price=MINI
                )
            )
            await asyncio.sleep(0)

    task = asyncio.create_task(caller())
    await writing.wait()
    go_on.set()
    with pytest.raises(TimeoutError):
        await task
    assert charged == [518] and (await ledger.balance(ORG)).held == 0
