"""Start-up refuses a multi-replica configuration that would silently diverge (issue 19):
`server.replicas.replica_problems` on settings, and `patchbay serve` exiting 3 with the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from server.cli import cli
from server.replicas import replica_problems
from server.settings import Settings

SHARED = {
    "database_url": "postgresql://patchbay@db/patchbay",
    "redis_url": "redis://redis:6379/0",
    "voice_token_secret": "s" * 32,
    "master_key": "v1:" + "A" * 43 + "=",
    "admin_token": "t" * 32,
}


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, **values)  # type: ignore[call-arg]


def test_one_replica_may_run_on_the_embedded_defaults(tmp_path: Path) -> None:
    assert replica_problems(_settings(tmp_path)) == []
    assert replica_problems(_settings(tmp_path, replicas=1)) == []


def test_several_replicas_sharing_postgres_redis_and_secrets_start(tmp_path: Path) -> None:
    assert replica_problems(_settings(tmp_path, replicas=2, **SHARED)) == []
    # The vault key may come from a file on a shared volume; no admin API, no operator token.
    file_key = {k: v for k, v in SHARED.items() if k not in ("master_key", "admin_token")}
    settings = _settings(tmp_path, replicas=3, master_key_file=tmp_path / "key", admin_api=False, **file_key)
    assert replica_problems(settings) == []


@pytest.mark.parametrize(
    ("missing", "says"),
    [
        ("database_url", "on SQLite: each replica would keep its own database. Set PATCHBAY_DATABASE_URL"),
        ("redis_url", "without PATCHBAY_REDIS_URL: cooldowns, rate limits"),
        ("voice_token_secret", "Set the same PATCHBAY_VOICE_TOKEN_SECRET on every replica"),
        ("master_key", "Set the same PATCHBAY_MASTER_KEY"),
        ("admin_token", "Set the same PATCHBAY_ADMIN_TOKEN on every replica"),
    ],
)
def test_each_unshared_setting_is_named_with_its_fix(tmp_path: Path, missing: str, says: str) -> None:
    values = {k: v for k, v in SHARED.items() if k != missing}
    [problem] = replica_problems(_settings(tmp_path, replicas=2, **values))
    assert problem.startswith("PATCHBAY_REPLICAS=2 ") and says in problem


def test_an_explicit_sqlite_url_is_refused_too(tmp_path: Path) -> None:
    values = {**SHARED, "database_url": f"sqlite:///{tmp_path}/shared.db"}
    [problem] = replica_problems(_settings(tmp_path, replicas=2, **values))
    assert "on SQLite" in problem


def test_serve_exits_3_before_touching_the_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no .env from the working directory
    env = {
        "PATCHBAY_REPLICAS": "2",
        "PATCHBAY_DATA_DIR": str(tmp_path / "data"),
        "PATCHBAY_DATABASE_URL": "",
        "PATCHBAY_REDIS_URL": "",
    }
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "VOICE_TOKEN_SECRET",
        "MASTER_KEY",
        "MASTER_KEY_FILE",
        "ADMIN_TOKEN",
    ):
        monkeypatch.delenv(f"PATCHBAY_{name}", raising=False)
    env = {k: v for k, v in env.items() if v}
    done = CliRunner().invoke(cli, ["serve"], env=env)
    assert done.exit_code == 3, done.output
    assert "refusing to start as one of several replicas" in done.output
    assert "PATCHBAY_REPLICAS=2 on SQLite" in done.output and "PATCHBAY_REDIS_URL" in done.output
    assert not (tmp_path / "data").exists()  # no database file, no generated key or token
