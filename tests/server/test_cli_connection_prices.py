"""Declared prices from the command line: `connection add|update --model ID --price ID=...`."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from billing.prices import Price
from foundation.orgs import Org
from providers.contract import ProviderId
from routing.catalog import default_catalog, price_for
from routing.snapshot import build_org_routing
from routing.tables import Connection
from server.db import Database
from tests.server.test_cli import run_cli

LAB = ("--provider", "openai_compatible", "--name", "lab", "--base-url", "https://llm.lab.example/v1")


@pytest.fixture
async def org(db: Database, db_url: str) -> str:
    return (await run_cli(db_url, "org", "create", "acme")).output.strip()


async def test_declared_prices_are_stored_shown_and_win_over_the_catalog(
    db: Database, db_url: str, org: str
) -> None:
    added = await run_cli(
        db_url, "connection", "add", "--org", org, *LAB,
        "--model", "llama-3-70b", "--price", "llama-3-70b=0.59/0.79",
        "--model", "whisper-large", "--price", "whisper-large=audio:0.006/min",
        "--model", "mytts", "--price", "mytts=chars:15/1M",
        "--model", "unpriced", "--json",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert [m.get("price") for m in json.loads(added.output)["models"]] == [
        {"input": "0.59", "output": "0.79"},
        {"per_minute": "0.006"},
        {"per_1m_chars": "15.00"},
        None,
    ]
    own = await run_cli(
        db_url, "connection", "add", "--org", org, "--provider", "openai", "--key-stdin",
        "--model", "gpt-4o", "--price", "gpt-4o=1/2/0.5", "--json", input="sk-test-0123456789\n",
    )  # fmt: skip
    assert own.exit_code == 0, own.output

    async with db.session() as s:
        org_row = await s.get(Org, org)
        rows = list(await s.scalars(select(Connection).where(Connection.org_id == org)))
    assert org_row is not None
    routing = build_org_routing(org_row, None, rows, [])
    assert routing.warnings == ()
    catalog = default_catalog()
    lab = routing.custom["lab"]
    prices = {
        m: price_for(info)
        for m in ("llama-3-70b", "whisper-large", "mytts", "unpriced")
        if (info := catalog.model_for(lab, m))
    }
    assert prices == {
        "llama-3-70b": Price(input=590_000, output=790_000),
        "whisper-large": Price(per_minute=6_000),
        "mytts": Price(per_1m_chars=15_000_000),
        "unpriced": None,
    }
    (openai,) = routing.profiles[ProviderId.OPENAI]
    gpt4o = catalog.model_for(openai, "gpt-4o")
    assert gpt4o is not None and price_for(gpt4o) == Price(
        input=1_000_000, output=2_000_000, cached_input=500_000
    )


async def test_update_prices_declared_models_and_keeps_the_others(db_url: str, org: str) -> None:
    added = await run_cli(
        db_url, "connection", "add", "--org", org, *LAB,
        "--model", "a", "--price", "a=1/2", "--model", "b", "--json",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    priced = await run_cli(
        db_url,
        "connection",
        "update",
        "--org",
        org,
        "openai_compatible:lab",
        "--price",
        "b=audio:0.01/min",
        "--json",
    )
    assert priced.exit_code == 0, priced.output
    assert [m.get("price") for m in json.loads(priced.output)["models"]] == [
        {"input": "1.00", "output": "2.00"},
        {"per_minute": "0.01"},
    ]
    replaced = await run_cli(
        db_url, "connection", "update", "--org", org, "openai_compatible:lab",
        "--model", "c", "--price", "c=0/0", "--json",
    )  # fmt: skip
    assert [(m["id"], m.get("price")) for m in json.loads(replaced.output)["models"]] == [
        ("c", {"input": "0.00", "output": "0.00"})
    ]
    undeclared = await run_cli(
        db_url, "connection", "update", "--org", org, "openai_compatible:lab", "--price", "zz=1/1", "--json"
    )
    assert undeclared.exit_code == 1
    assert "does not declare" in json.loads(undeclared.output)["error"]["message"]


@pytest.mark.parametrize(
    ("price", "code", "says"),
    [
        ("llama", 2, "is not ID=PRICE"),
        ("=1/2", 2, "is not ID=PRICE"),
        ("llama=cheap", 2, "is not a price"),
        ("llama=1/2/3/4", 2, "is not a price"),
        ("llama=audio:0.006/sec", 2, "is not a price"),
        ("llama=-1/2", 1, "must not be negative"),
        ("llama=0.0000001/1", 1, "more precision than a micro-dollar"),
        ("llama=abc/1", 1, "decimal number"),
        ("other=1/2", 1, "does not declare"),
    ],
)
async def test_bad_prices_are_refused_with_the_documented_exit_codes(
    db_url: str, org: str, price: str, code: int, says: str
) -> None:
    result = await run_cli(
        db_url, "connection", "add", "--org", org, *LAB, "--model", "llama", "--price", price, "--json"
    )
    assert result.exit_code == code, result.output
    assert says in result.output
    listed = await run_cli(db_url, "connection", "list", "--org", org, "--json")
    assert json.loads(listed.output) == []


async def test_a_model_priced_twice_is_a_usage_error(db_url: str, org: str) -> None:
    result = await run_cli(
        db_url,
        "connection",
        "add",
        "--org",
        org,
        *LAB,
        "--model",
        "m",
        "--price",
        "m=1/2",
        "--price",
        "m=3/4",
    )
    assert result.exit_code == 2 and "priced twice" in result.output
