"""A key's rules and checks, as pure functions: names, model lists, expiry, the model check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from foundation.errors import RequestError
from routing.catalog import default_catalog
from server.key_scope import (
    KeyStatus,
    check_models,
    check_name,
    describe_models,
    key_status,
    model_allowed,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CATALOG = default_catalog()


def test_names_are_trimmed_and_bounded() -> None:
    assert check_name("  ci bot  ") == "ci bot"
    assert check_name("x" * 128) == "x" * 128
    for bad in (None, "", "   ", "x" * 129, "tab\there", "new\nline"):
        with pytest.raises(RequestError) as refused:
            check_name(bad)
        assert refused.value.param == "name"


def test_model_lists_are_trimmed_deduplicated_and_bounded() -> None:
    assert check_models(None) is None
    assert check_models([]) is None
    assert check_models([" openai/gpt-4o-mini", "OpenAI/GPT-4o-mini", "sonnet"]) == [
        "openai/gpt-4o-mini",
        "sonnet",
    ]
    assert check_models(["m"] * 100) == ["m"]
    for bad in (["m"] * 101, [""], ["   "], ["a" * 201], ["two words"], ["ctl\x00"]):
        with pytest.raises(RequestError) as refused:
            check_models(bad)
        assert refused.value.param == "models"
    assert check_models(["a" * 200]) == ["a" * 200]


def test_status() -> None:
    later = NOW + timedelta(seconds=1)
    assert key_status(None, None, NOW) is KeyStatus.ACTIVE
    assert key_status(None, later, NOW) is KeyStatus.ACTIVE
    assert key_status(None, NOW, NOW) is KeyStatus.EXPIRED
    assert key_status(NOW, later, NOW) is KeyStatus.REVOKED


def test_any_model_without_a_list() -> None:
    assert model_allowed(None, "anything/at-all", CATALOG)
    assert model_allowed(None, None, CATALOG)


def test_a_list_allows_its_models_their_aliases_and_nothing_else() -> None:
    allowed = frozenset({"openai/gpt-4o-mini", "sonnet", "agent:support"})
    assert model_allowed(allowed, "openai/gpt-4o-mini", CATALOG)
    assert model_allowed(allowed, "OpenAI/GPT-4o-mini", CATALOG)
    assert model_allowed(allowed, "openai:second/gpt-4o-mini", CATALOG)  # one connection of the model
    assert model_allowed(allowed, "sonnet", CATALOG)
    assert model_allowed(allowed, "anthropic/claude-sonnet-4-5", CATALOG)  # what the alias stands for
    assert model_allowed(allowed, "agent:support", CATALOG)
    for refused in ("openai/gpt-4o", "haiku", "agent:sales", "default", "auto", "", None, "gpt-4o-mini"):
        assert not model_allowed(allowed, refused, CATALOG), refused


def test_default_lets_the_route_choose() -> None:
    allowed = frozenset({"default"})
    for name in ("default", "auto", "", None, "AUTO"):
        assert model_allowed(allowed, name, CATALOG)
    assert not model_allowed(allowed, "openai/gpt-4o-mini", CATALOG)


def test_long_lists_are_cut_short_in_messages() -> None:
    assert describe_models({"b", "a"}) == "a, b"
    assert describe_models({f"m{i:02}" for i in range(12)}).endswith("m09 and 2 more")
