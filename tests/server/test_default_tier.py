"""`PATCHBAY_DEFAULT_TIER`: the tier of an org created without one, from the CLI and the admin API."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from foundation.tiers import Tier
from server.db import Database
from server.settings import Settings
from tests.server.conftest import ADMIN_TOKEN
from tests.server.test_cli import run_cli


def test_the_default_is_enterprise_and_only_a_tier_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PATCHBAY_DEFAULT_TIER", raising=False)
    assert Settings().default_tier is Tier.ENTERPRISE
    monkeypatch.setenv("PATCHBAY_DEFAULT_TIER", "starter")
    assert Settings().default_tier is Tier.STARTER
    monkeypatch.setenv("PATCHBAY_DEFAULT_TIER", "platinum")
    with pytest.raises(ValidationError, match="default_tier"):
        Settings()


async def test_cli_org_create_takes_the_setting_unless_a_tier_is_given(
    db: Database, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PATCHBAY_DEFAULT_TIER", raising=False)
    plain = await run_cli(db_url, "org", "create", "plain", "--json")
    assert plain.exit_code == 0, plain.output
    assert json.loads(plain.output)["tier"] == "enterprise"
    monkeypatch.setenv("PATCHBAY_DEFAULT_TIER", "pro")
    assert json.loads((await run_cli(db_url, "org", "create", "set", "--json")).output)["tier"] == "pro"
    chosen = await run_cli(db_url, "org", "create", "chosen", "--tier", "free", "--json")
    assert json.loads(chosen.output)["tier"] == "free"
    monkeypatch.setenv("PATCHBAY_DEFAULT_TIER", "platinum")
    refused = await run_cli(db_url, "org", "create", "nope", "--json")
    assert refused.exit_code == 2 and "PATCHBAY_DEFAULT_TIER" in refused.output


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path, database_url=db_url, admin_token=ADMIN_TOKEN, default_tier=Tier.STARTER
    )


async def test_admin_api_org_create_takes_the_setting_unless_a_tier_is_given(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    plain = await client.post("/admin/v1/orgs", json={"name": "plain"}, headers=admin_headers)
    assert plain.status_code == 201 and plain.json()["tier"] == "starter"
    chosen = await client.post(
        "/admin/v1/orgs", json={"name": "chosen", "tier": "agency"}, headers=admin_headers
    )
    assert chosen.status_code == 201 and chosen.json()["tier"] == "agency"
    null = await client.post("/admin/v1/orgs", json={"name": "null", "tier": None}, headers=admin_headers)
    assert null.json()["tier"] == "starter"
