"""`patchbay import openclaw` end to end on both database backends, with cooldowns in Redis:
the samples, a re-run, a dry run, hostile files, and a canary scan of everything it leaves."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import func, select

from foundation.audit import AuditEvent, MemoryAudit
from foundation.db import Base
from providers.vault.tables import VaultSecret
from routing.config_versions import ConfigVersion
from routing.cooldown_store import RedisCooldownStore
from routing.redis_health import redis_client
from routing.tables import Agent, Connection, OrgAISettings
from server.db import Database
from server.services import Overrides
from server.settings import Settings
from server.vault_keys import build_vault
from tests.server.openclaw.fixtures import CANARIES, FIXTURES, T0_MS
from tests.server.openclaw.test_plan import ENV, hostile_store
from tests.server.test_cli import run_cli

CLOCK = Overrides(now=lambda: datetime.fromtimestamp(T0_MS / 1000, UTC))
ALL_CANARIES = (
    *CANARIES,
    "CANARY-0009",
    "CANARY-0010",
    "CANARY-hostile",
    "CANARY-mixed",
    "CANARY-token",
    "CANARY-access",
    "CANARY-ok",
)


@pytest.fixture
async def org(db: Database, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PATCHBAY_DATA_DIR", str(tmp_path))
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return (await run_cli(db_url, "org", "create", "acme")).output.strip()


@pytest.fixture
async def shared_cooldowns(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RedisCooldownStore]:
    monkeypatch.setenv("PATCHBAY_REDIS_URL", redis_url)
    store = RedisCooldownStore(redis_client(redis_url), prefix="patchbay:")
    yield store
    await store.aclose()


async def run_import(db_url: str, *extra: str) -> Result:
    args = ["import", "openclaw", "--org", "acme", "--profiles", str(FIXTURES / "auth-profiles.json")]
    args += ["--config", str(FIXTURES / "openclaw.json"), "--resolve-env", "--json", *extra]
    return await run_cli(db_url, *args, overrides=CLOCK)


async def counts(db: Database) -> dict[str, int]:
    async with db.session() as s:
        tables: list[Any] = [Connection, Agent, VaultSecret, OrgAISettings]
        out = {t.__tablename__: int(await s.scalar(select(func.count()).select_from(t)) or 0) for t in tables}
        # Comparing a key decrypts it, and that read is audited; every other audit row is a change.
        changes = select(func.count()).select_from(AuditEvent).where(AuditEvent.action != "secret.decrypt")
        out["audit_events"] = int(await s.scalar(changes) or 0)
        out["config_version"] = int(await s.scalar(select(func.max(ConfigVersion.version))) or 0)
        return out


async def test_the_samples_import_as_planned_and_a_rerun_changes_nothing(
    db: Database, db_url: str, org: str, tmp_path: Path, shared_cooldowns: RedisCooldownStore
) -> None:
    before = await counts(db)
    dry = await run_import(db_url, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert await counts(db) == before
    assert await shared_cooldowns.get_many(org, ["openai:default", "anthropic:default"]) == {}

    real = await run_import(db_url)
    assert real.exit_code == 0, real.output
    assert json.loads(dry.output)["items"] == json.loads(real.output)["items"]
    items = {
        i["target"]: i
        for i in json.loads(real.output)["items"]
        if i["item"].startswith(("profile", "models."))
    }
    assert {t for t, i in items.items() if i["status"] == "created"} == {
        "openai:default",
        "openai:backup",
        "anthropic:default",
        "anthropic:setup-token",
        "openrouter:default",
        "openai_compatible:acme-llm",
        "anthropic:acme-claude-proxy",
    }

    async with db.session() as s:
        conns = {c.profile_id: c for c in await s.scalars(select(Connection).where(Connection.org_id == org))}
        agent = await s.scalar(select(Agent).where(Agent.org_id == org, Agent.name == "main"))
        ai = await s.get(OrgAISettings, org)
    assert [
        p
        for p, _ in sorted(
            ((p, c.position) for p, c in conns.items() if p.startswith("anthropic:")), key=lambda x: x[1]
        )
    ] == [
        "anthropic:setup-token",
        "anthropic:default",
        "anthropic:acme-claude-proxy",
    ]
    assert (conns["openai:default"].position, conns["openai:backup"].position) == (0, 1)
    assert ai is not None and set(ai.profile_order_explicit or []) == {"openai", "anthropic"}
    acme = conns["openai_compatible:acme-llm"]
    assert (
        acme.base_url == "https://llm.internal.acme.example/v1"
        and acme.credential_source == "org_private_endpoint"
    )
    assert [(m["id"], m["capabilities"]) for m in acme.models] == [
        ("acme-chat-70b", ["text", "tools"]),
        ("acme-vision-8b", ["text", "tools", "vision"]),
    ]
    assert conns["anthropic:setup-token"].credential_kind == "bearer_token"
    assert agent is not None and agent.default_model == "anthropic/claude-sonnet-4-6"
    assert agent.chains["chat"] == [
        "anthropic/claude-sonnet-4-6",
        "openai/gpt-5.2",
        "openrouter/moonshotai/kimi-k2",
        "acme-llm/acme-chat-70b",
    ]
    vault = build_vault(Settings(database_url=db_url, data_dir=tmp_path), db, MemoryAudit())
    proxy = conns["anthropic:acme-claude-proxy"]
    assert proxy.secret_id is not None
    credential = await vault.credential(proxy.secret_id, org_id=org, owner_id=proxy.id, field="api_key")
    assert credential.reveal("test") == ENV["ACME_PROXY_KEY"]

    states = await shared_cooldowns.get_many(
        org, ["openai:default", "anthropic:default", "openrouter:default"]
    )
    assert set(states) == {"openai:default", "anthropic:default"}
    assert (states["openai:default"].cooldown_until, states["openai:default"].cooldown_model) == (
        1_767_225_660.0,
        "gpt-5.2",
    )
    assert (states["anthropic:default"].disabled_until, states["anthropic:default"].disabled_reason) == (
        1_767_226_200.0,
        "billing",
    )

    after_first = await counts(db)
    again = await run_import(db_url)
    assert again.exit_code == 0
    statuses = {i["status"] for i in json.loads(again.output)["items"]}
    assert statuses <= {"unchanged", "skipped"}
    assert await counts(db) == after_first
    assert await shared_cooldowns.get_many(org, ["openai:default", "anthropic:default"]) == states
    await shared_cooldowns._redis.delete(*(shared_cooldowns.key(org, p) for p in states))


async def test_without_redis_cooldowns_are_reported_not_carried(
    db_url: str, org: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PATCHBAY_REDIS_URL", raising=False)
    result = await run_import(db_url)
    assert result.exit_code == 0
    cooldowns = [
        i
        for i in json.loads(result.output)["items"]
        if i["item"].startswith("usageStats") and i["status"] == "skipped"
    ]
    assert any("PATCHBAY_REDIS_URL" in (i["reason"] or "") for i in cooldowns)


async def test_hostile_files_are_reported_per_item_exit_4_and_leave_no_secret_anywhere(
    db: Database,
    db_url: str,
    org: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    shared_cooldowns: RedisCooldownStore,
) -> None:
    caplog.set_level(logging.DEBUG)
    store = tmp_path / "hostile.json"
    store.write_text(json.dumps(hostile_store()))
    outputs = []
    for extra in ((), ("--json",), ("--dry-run",), ("--json", "--dry-run")):
        result = await run_cli(
            db_url, "import", "openclaw", "--org", org, "--profiles", str(store), *extra, overrides=CLOCK
        )
        assert result.exit_code == 4, result.output
        outputs.append(result.output + (result.stderr or ""))
    report = json.loads(outputs[1])
    refused = {i["item"] for i in report["items"] if i["status"] == "refused"}
    assert {
        "profile openai:blank",
        "profile openai:liar",
        "profile openai:weird",
        "profile openai:user@example.com",
    } <= refused
    assert all(i["reason"] for i in report["items"] if i["status"] in ("refused", "skipped"))

    fixtures = await run_import(db_url)
    outputs.append(fixtures.output + (fixtures.stderr or ""))
    not_json = tmp_path / "broken.json"
    not_json.write_text(
        '{"profiles": {"openai:x": {"type": "api_key", "key": "sk-test-CANARY-hostile-broken"'
    )
    broken = await run_cli(db_url, "import", "openclaw", "--org", org, "--profiles", str(not_json), "--json")
    assert broken.exit_code == 1 and "broken.json is not JSON" in broken.output
    outputs.append(broken.output + (broken.stderr or ""))

    seen = "\n".join(outputs) + "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    seen += await every_column(db)
    assert not [c for c in ALL_CANARIES if c in seen]
    if db_url.startswith("sqlite"):
        db_file = Path(db_url.split("///", 1)[1])
        for path in (db_file, db_file.with_name(db_file.name + "-wal")):
            if path.exists():
                assert not [c for c in ALL_CANARIES if c.encode() in path.read_bytes()]
    raw = [
        v
        for v in await shared_cooldowns._redis.mget(
            [shared_cooldowns.key(org, p) for p in ("openai:default", "anthropic:default")]
        )
        if v
    ]
    assert raw and not [c for c in ALL_CANARIES if c.encode() in b"".join(raw)]
    await shared_cooldowns._redis.delete(
        *(shared_cooldowns.key(org, p) for p in ("openai:default", "anthropic:default"))
    )


async def every_column(db: Database) -> str:
    """The text of every column of every row in the database."""
    parts: list[str] = []
    async with db.session() as s:
        for table in Base.metadata.sorted_tables:
            for row in await s.execute(select(table)):
                parts.extend(str(v) for v in row)
    return "\n".join(parts)


async def test_an_item_refused_at_write_time_leaves_nothing_behind(
    db: Database, db_url: str, org: str, tmp_path: Path
) -> None:
    """The guard refuses a metadata address only when the connection is written: that item rolls
    back whole (no connection, no vault secret), the others are imported (the order after it sees
    the connections before it, in the dry run too), and the exit code is 4."""
    key = {"type": "api_key", "provider": "openai"}
    store = {
        "profiles": {
            "openai:default": key | {"key": "sk-test-CANARY-0001"},
            "openai:second": key | {"key": "sk-test-CANARY-0003"},
        },
        "order": {"openai": ["openai:second", "openai:default"]},
    }
    metadata = {
        "baseUrl": "http://169.254.169.254/v1",
        "apiKey": "sk-test-CANARY-0002",
        "models": [{"id": "m"}],
    }
    (tmp_path / "p.json").write_text(json.dumps(store))
    (tmp_path / "c.json").write_text(json.dumps({"models": {"providers": {"metadata": metadata}}}))
    args = [
        "import",
        "openclaw",
        "--org",
        org,
        "--profiles",
        str(tmp_path / "p.json"),
        "--config",
        str(tmp_path / "c.json"),
    ]
    reports = []
    for extra in (("--dry-run", "--json"), ("--json",)):
        result = await run_cli(db_url, *args, *extra, overrides=CLOCK)
        assert result.exit_code == 4, result.output
        reports.append(json.loads(result.output)["items"])
        items = {i["item"]: i for i in reports[-1]}
        assert items["models.providers.metadata"]["status"] == "refused"
        assert items["profile openai:default"]["status"] == "created"
        assert items["order.openai"]["actions"][0] == "order openai:second, openai:default"
    assert reports[0] == reports[1]
    async with db.session() as s:
        profiles = sorted(
            c.profile_id for c in await s.scalars(select(Connection).where(Connection.org_id == org))
        )
        secrets_held = int(await s.scalar(select(func.count()).select_from(VaultSecret)) or 0)
    assert profiles == ["openai:default", "openai:second"] and secrets_held == 2
