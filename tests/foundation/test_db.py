"""`foundation.db.new_id`: the id format every table uses."""

from __future__ import annotations

import re

from foundation.db import new_id

CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def test_ids_are_prefix_and_20_crockford_characters() -> None:
    ids = [new_id("aud") for _ in range(2000)]
    assert all(re.fullmatch(r"aud_[0-9a-hjkmnp-tv-z]{20}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_every_character_of_the_alphabet_occurs_at_every_position() -> None:
    # 3,000 draws: a position missing one of 32 characters would mean fewer than 100 random bits.
    ids = [new_id("x")[2:] for _ in range(3000)]
    for position in range(20):
        assert {i[position] for i in ids} == set(CROCKFORD)
