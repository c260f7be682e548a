"""Feature flag evaluation (routing/flags.py): kill switch, canary, percentage by stable hash,
default; and the resolver's `skipped:flag:*` with the platform fallback it opens."""

from __future__ import annotations

import hashlib

import pytest

from routing.flags import BUCKETS, FLAGS, FlagState, bucket, enabled_flags, flag_def, is_on, source_allowed

BYOK = flag_def("byok")


def test_the_bucket_is_sha256_of_flag_and_org_mod_10000() -> None:
    digest = hashlib.sha256(b"byok:org_123").digest()
    assert bucket("byok", "org_123") == int.from_bytes(digest[:8], "big") % BUCKETS


def test_no_state_is_the_documented_default() -> None:
    assert all(is_on(d, None, "org_1") is d.default for d in FLAGS.values())


def test_percent_rolls_out_to_about_that_share_of_orgs_and_never_moves_an_org_back() -> None:
    orgs = [f"org_{n}" for n in range(4000)]
    on_at = {p: {o for o in orgs if is_on(BYOK, FlagState("byok", percent=p), o)} for p in (0, 10, 50, 100)}
    assert on_at[0] == set() and on_at[100] == set(orgs)
    assert 300 <= len(on_at[10]) <= 500 and 1800 <= len(on_at[50]) <= 2200
    assert on_at[10] <= on_at[50]  # raising the percentage only adds orgs


def test_canary_orgs_are_on_and_the_kill_switch_beats_everything() -> None:
    state = FlagState("byok", percent=0, canary=frozenset({"org_a"}))
    assert is_on(BYOK, state, "org_a") and not is_on(BYOK, state, "org_b")
    killed = FlagState("byok", percent=100, canary=frozenset({"org_a"}), killed=True)
    assert not is_on(BYOK, killed, "org_a") and not is_on(BYOK, killed, "org_b")


def test_enabled_flags_ignores_unknown_stored_names() -> None:
    on = enabled_flags([FlagState("byok", percent=0), FlagState("retired", percent=100)], "org_a")
    assert "byok" not in on and "retired" not in on and "voice" in on


@pytest.mark.parametrize(
    ("source", "flags", "allowed"),
    [
        ("byok", frozenset(), False),
        ("byok", frozenset({"byok"}), True),
        ("private", frozenset({"byok"}), False),
        ("private", frozenset({"private_endpoints"}), True),
        ("platform", frozenset(), True),
    ],
)
def test_billing_sources_are_gated_by_their_flag(source: str, flags: frozenset[str], allowed: bool) -> None:
    assert source_allowed(source, flags) is allowed


def test_unknown_flag_names_say_which_exist() -> None:
    with pytest.raises(LookupError, match="known flags are billing_enforcement, byok"):
        flag_def("nope")
