"""`billing.tiers`: the per-tier table is data, checked on load, and docs/billing.md shows exactly it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from billing.tiers import (
    TIERS_PATH,
    ByokModel,
    default_table,
    markdown_table,
    percent,
    policy_for,
    table_from_json,
    tier_allowing_more,
    tier_prices,
    with_prices,
)
from foundation.tiers import Tier

DOC = Path(__file__).resolve().parents[2] / "docs" / "billing.md"


def doc_tier_table() -> str:
    section = DOC.read_text().split("\n## Tiers and what they charge\n", 1)[1].split("\n## ", 1)[0]
    return "\n".join(line for line in section.splitlines() if line.startswith("|"))


def test_docs_billing_md_shows_exactly_the_table_in_the_data() -> None:
    expected = markdown_table(default_table())
    assert doc_tier_table() == expected, (
        f"docs/billing.md, 'Tiers and what they charge', must show billing/data/tiers.json as:\n{expected}"
    )


def test_the_default_table_is_the_one_the_issue_describes() -> None:
    table = default_table()
    assert set(table) == set(Tier)
    free, starter, pro, agency, enterprise = (table[t] for t in Tier)
    # free: platform models only.
    assert (free.platform_allowed, free.byok_allowed, free.private_allowed) == (True, False, False)
    # starter: adds BYOK, with a per-request surcharge.
    assert (starter.platform_allowed, starter.byok_allowed, starter.private_allowed) == (True, True, False)
    assert starter.byok_model is ByokModel.SURCHARGE and starter.byok_surcharge_bp > 0
    # pro and agency: BYOK and private endpoints, no per-request charge.
    for row in (pro, agency):
        assert (row.platform_allowed, row.byok_allowed, row.private_allowed) == (True, True, True)
        assert row.byok_model is ByokModel.NONE and row.byok_surcharge_bp == 0
    # enterprise: everything, bundled.
    assert (enterprise.platform_allowed, enterprise.byok_allowed, enterprise.private_allowed) == (
        True,
        True,
        True,
    )
    assert enterprise.byok_model is ByokModel.NONE and enterprise.markup_bp == 0
    assert enterprise.voice_fee is None and enterprise.max_connections is None


def test_an_unknown_tier_name_gets_the_most_restrictive_row() -> None:
    assert policy_for("pro").tier is Tier.PRO
    assert policy_for("platinum") == default_table()[Tier.FREE]


def test_the_byok_override_allows_byok_and_changes_nothing_else() -> None:
    free = policy_for("free")
    kept = free.with_byok_override()
    assert kept.byok_allowed and not free.byok_allowed
    assert (kept.private_allowed, kept.markup_bp, kept.byok_model, kept.voice_fee) == (
        free.private_allowed,
        free.markup_bp,
        free.byok_model,
        free.voice_fee,
    )


@pytest.mark.parametrize(
    ("bp", "text"), [(0, "0%"), (2000, "20%"), (250, "2.5%"), (1, "0.01%"), (10_000, "100%")]
)
def test_percent_is_exact(bp: int, text: str) -> None:
    assert percent(bp) == text


def _table() -> dict[str, object]:
    raw: dict[str, object] = json.loads(TIERS_PATH.read_text())
    return raw


def _tiers(raw: dict[str, object]) -> dict[str, dict[str, object]]:
    tiers = raw["tiers"]
    assert isinstance(tiers, dict)
    return tiers


def test_a_table_missing_a_tier_or_of_another_version_is_refused() -> None:
    raw = _table()
    del _tiers(raw)["agency"]
    with pytest.raises(ValueError, match="no row for agency"):
        table_from_json(json.dumps(raw))
    with pytest.raises(ValueError, match="version"):
        table_from_json(json.dumps({**_table(), "version": 2}))


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"byok_model": "surcharge"}, "byok_surcharge_bp"),  # a surcharge of nothing
        ({"byok_surcharge_bp": 500}, "byok_surcharge_bp"),  # a share with no surcharge model
        ({"markup_bp": -1}, "markup_bp"),
        ({"markup_bp": 1.5}, "markup_bp"),
        ({"max_connections": -1}, "max_connections"),
        ({"byok_model": "monthly"}, "byok_model"),
        ({"markup": 20}, "markup"),
        ({"voice_fee_usd_per_minute": "0.0000001"}, "micro-dollar"),
        ({"voice_fee_usd_per_minute": "-0.01"}, "negative"),
    ],
)
def test_a_bad_row_is_refused_loudly(change: dict[str, object], says: str) -> None:
    raw = _table()
    _tiers(raw)["pro"].update(change)
    with pytest.raises((ValueError, ValidationError), match=re.escape(says)):
        table_from_json(json.dumps(raw))


COMMERCIAL = ("stripe_prices", "included_credits_usd", "grace_period_days", "fallback_tier")


def test_a_table_written_before_the_commercial_terms_loads_with_their_defaults() -> None:
    raw = json.loads(TIERS_PATH.read_text())
    for row in raw["tiers"].values():
        for name in COMMERCIAL:
            row.pop(name)
    table = table_from_json(json.dumps(raw))
    for row in table.values():
        assert (row.stripe_prices, row.included_credits, row.grace_period_days, row.fallback_tier) == (
            (),
            0,
            7,
            Tier.FREE,
        )


def test_the_commercial_terms_are_data_and_checked() -> None:
    table = default_table()
    assert table[Tier.ENTERPRISE].included_credits == 500_000_000
    assert [table[t].grace_period_days for t in Tier] == [0, 7, 7, 14, 14]
    assert {table[t].fallback_tier for t in Tier} == {Tier.FREE}
    assert all(table[t].stripe_prices == () for t in Tier), "price ids belong to an account: none packaged"
    raw = json.loads(TIERS_PATH.read_text())
    for field, bad in (
        ("grace_period_days", -1),
        ("included_credits_usd", "1.0000001"),
        ("fallback_tier", "gold"),
    ):
        broken = json.loads(json.dumps(raw))
        broken["tiers"]["pro"][field] = bad
        with pytest.raises((ValidationError, ValueError)):
            table_from_json(json.dumps(broken))


def test_prices_from_the_setting_fill_the_table_and_must_name_one_tier_each() -> None:
    table = with_prices(default_table(), {Tier.PRO: ("price_p", "price_fee")})
    assert table[Tier.PRO].stripe_prices == ("price_p", "price_fee")
    assert tier_prices(table) == {Tier.PRO: ("price_p", "price_fee")}
    assert table[Tier.STARTER] == default_table()[Tier.STARTER]
    with pytest.raises(ValueError, match="its own first Stripe price id"):
        with_prices(table, {Tier.STARTER: ("price_p",)})


def test_the_tier_that_allows_more_connections() -> None:
    table = default_table()
    assert tier_allowing_more(table, 2) is table[Tier.STARTER]
    assert tier_allowing_more(table, 5) is table[Tier.PRO]
    assert tier_allowing_more(table, 1000) is table[Tier.ENTERPRISE]
