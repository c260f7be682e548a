"""Credit packs: exact prices and credits from data, refusals of bad data, and the docs table."""

from __future__ import annotations

from pathlib import Path

import pytest

from billing.credit_packs import CreditPack, default_packs, markdown_table, pack, parse_packs
from foundation.errors import NotFoundError

DOC = Path(__file__).resolve().parents[2] / "docs" / "billing.md"


def test_docs_billing_md_lists_exactly_the_packs_in_the_data() -> None:
    section = DOC.read_text().split("\n### Credit packs\n", 1)[1].split("\n### ", 1)[0]
    shown = "\n".join(line for line in section.splitlines() if line.startswith("|"))
    assert shown == markdown_table(default_packs())


def test_packs_are_exact_cents_and_micro_usd() -> None:
    assert pack("usd200") == CreditPack("usd200", "200 USD of credits (+5%)", 20_000, 210_000_000)
    with pytest.raises(NotFoundError, match="the packs are: usd10, usd50, usd200"):
        pack("usd7")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"id": "a", "name": "a", "price_usd": "10.005", "credits_usd": "10"}, "whole cents"),
        ({"id": "a", "name": "a", "price_usd": "0", "credits_usd": "10"}, "above 0"),
        ({"id": "a", "name": "a", "price_usd": "10", "credits_usd": "0.0000001"}, "micro-dollar"),
        ({"id": "a", "name": "a", "price_usd": 10.5, "credits_usd": "10"}, "decimal|whole cents"),
    ],
)
def test_bad_packs_are_refused(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_packs({"version": 1, "packs": [raw]})


def test_a_refund_takes_back_a_share_rounded_down() -> None:
    bonus = CreditPack("p", "p", 20_000, 210_000_000)
    assert bonus.credits_for_refund(5_000) == 52_500_000
    assert bonus.credits_for_refund(20_000) == 210_000_000
    odd = CreditPack("q", "q", 3, 1_000_000)
    parts = [odd.credits_for_refund(n) - odd.credits_for_refund(n - 1) for n in (1, 2, 3)]
    assert parts == [333_333, 333_333, 333_334] and sum(parts) == odd.credits
