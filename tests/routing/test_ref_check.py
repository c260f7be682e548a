"""`routing.ref_check`: refs a routing change names, checked by the resolver itself."""

from __future__ import annotations

from providers.contract import Capability
from routing.catalog import default_catalog
from routing.model import ConnectionStatus, DeclaredModel
from routing.ref_check import check_refs
from tests.routing.fakes import OrgBuilder, conn

CATALOG = default_catalog()
LAB = conn("openai_compatible", "mylab", models=[DeclaredModel("llama", frozenset({Capability.TEXT}))])


def test_served_refs_pass_and_each_mistake_names_its_field() -> None:
    org = OrgBuilder(connections=[conn("openai", "main"), LAB]).build()
    problems = check_refs(
        org,
        CATALOG,
        chains={
            "chat": ["openai/gpt-4o", "mylab/llama", "anthropic/claude-haiku-4-5"],
            "tools": ["mylab/llama"],
        },
        default_model="mylab/other",
        allowed_models=["openai/gpt-4o", "mylab/llama", "xai/grok-4"],
    )
    assert [(p.param, p.ref) for p in problems] == [
        ("chains.chat", "anthropic/claude-haiku-4-5"),
        ("chains.tools", "mylab/llama"),
        ("default_model", "mylab/other"),
        ("allowed_models", "xai/grok-4"),
    ]
    assert "lacks the `tools` capability the tools intent needs" in problems[1].message


def test_a_disabled_connection_is_not_a_mistake_in_the_chain() -> None:
    org = OrgBuilder(connections=[conn("openai", "main", status=ConnectionStatus.DISABLED)]).build()
    assert check_refs(org, CATALOG, chains={"chat": ["openai/gpt-4o"]}) == []


def test_malformed_refs_and_intents_are_left_to_the_save() -> None:
    org = OrgBuilder().build()
    assert check_refs(org, CATALOG, chains={"dance": ["openai/gpt-4o"], "chat": ["gpt-4o"]}) == []
