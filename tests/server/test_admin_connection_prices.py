"""Declared prices through the admin API: a `price` object on declared models, exact or refused with 400."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

LAB = {"provider": "openai_compatible", "name": "lab", "base_url": "https://llm.lab.example/v1"}


@pytest.fixture
async def base(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> str:
    r = await client.post("/admin/v1/orgs", json={"name": "acme"}, headers=admin_headers)
    return f"/admin/v1/orgs/{r.json()['id']}/connections"


async def test_prices_are_stored_exactly_and_shown_back(
    client: httpx.AsyncClient, admin_headers: dict[str, str], base: str
) -> None:
    models = [
        {
            "id": "llama",
            "capabilities": ["text", "tools"],
            "price": {"input": "0.59", "output": 1, "cached_input": "0.1"},
        },
        {"id": "whisper", "capabilities": ["stt"], "price": {"per_minute": "0.006"}},
        "plain",
    ]
    created = await client.post(base, json={**LAB, "models": models}, headers=admin_headers)
    assert created.status_code == 201, created.text
    assert created.json()["models"] == [
        {
            "id": "llama",
            "capabilities": ["text", "tools"],
            "price": {"input": "0.59", "output": "1.00", "cached_input": "0.10"},
        },
        {"id": "whisper", "capabilities": ["stt"], "price": {"per_minute": "0.006"}},
        {"id": "plain", "capabilities": ["text"]},
    ]
    updated = await client.patch(
        f"{base}/openai_compatible:lab",
        json={"models": [{"id": "mytts", "capabilities": ["tts"], "price": {"per_1m_chars": "15"}}]},
        headers=admin_headers,
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["models"] == [
        {"id": "mytts", "capabilities": ["tts"], "price": {"per_1m_chars": "15.00"}}
    ]
    shown = await client.get(f"{base}/openai_compatible:lab", headers=admin_headers)
    assert shown.json()["models"] == updated.json()["models"]


@pytest.mark.parametrize(
    ("price", "param", "says"),
    [
        ({"input": "-0.1"}, "models.1.price.input", "must not be negative"),
        ({"output": "0.0000001"}, "models.1.price.output", "micro-dollar"),
        ({"output": "lots"}, "models.1.price.output", "decimal number"),
        ({"input": 0.15}, "models.1.price.input", "exact decimal strings"),
        ({"input": True}, "models.1.price.input", "exact decimal strings"),
        ({"inptu": "1"}, "models.1.price.inptu", "Extra inputs"),
        ({}, "models.1.price", "empty"),
    ],
)
async def test_a_bad_price_is_a_400_naming_the_field(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    base: str,
    price: dict[str, Any],
    param: str,
    says: str,
) -> None:
    body = {**LAB, "models": ["plain", {"id": "llama", "price": price}]}
    created = await client.post(base, json=body, headers=admin_headers)
    assert created.status_code == 400, created.text
    error = created.json()["error"]
    assert error["param"] == param and says in error["message"]
    assert (await client.get(base, headers=admin_headers)).json() == []

    ok = await client.post(base, json={**LAB, "models": ["llama"]}, headers=admin_headers)
    assert ok.status_code == 201
    patched = await client.patch(
        f"{base}/openai_compatible:lab", json={"models": body["models"]}, headers=admin_headers
    )
    assert patched.status_code == 400 and patched.json()["error"]["param"] == param
    shown = await client.get(f"{base}/openai_compatible:lab", headers=admin_headers)
    assert shown.json()["models"] == [{"id": "llama", "capabilities": ["text"]}]
