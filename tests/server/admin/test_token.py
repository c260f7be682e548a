"""The admin token: PATCHBAY_ADMIN_TOKEN first, else a generated DATA_DIR/admin.token; `patchbay admin token`."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from server.admin.token import AdminTokenError, load_admin_token
from server.app import create_app
from server.cli import cli
from server.db import Database
from server.services import Services, StartupError
from server.settings import Settings
from tests.providers.vault.canary import captured_logs


def test_generated_once_with_mode_0600_and_logged_without_the_token(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    with captured_logs() as logs:
        first = load_admin_token(settings)
        again = load_admin_token(settings)
    assert first is not None and again is not None
    value = first.value.get_secret_value()
    assert len(value) >= 40 and again.value.get_secret_value() == value
    path = tmp_path / "admin.token"
    assert first.source == str(path) and first.from_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert str(path.resolve()) in logs.getvalue()
    assert value not in logs.getvalue()
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_the_variable_wins_and_no_file_is_written(tmp_path: Path) -> None:
    token = load_admin_token(Settings(data_dir=tmp_path, admin_token="from-the-environment-0123456789abcdef"))
    assert token is not None and token.source == "PATCHBAY_ADMIN_TOKEN" and not token.from_file
    assert token.value.get_secret_value() == "from-the-environment-0123456789abcdef"
    assert not (tmp_path / "admin.token").exists()


def test_admin_api_off_means_no_token_and_no_file(tmp_path: Path) -> None:
    assert load_admin_token(Settings(data_dir=tmp_path, admin_api=False)) is None
    assert load_admin_token(Settings(data_dir=tmp_path, admin_api=False, admin_token="x" * 20)) is None
    assert not (tmp_path / "admin.token").exists()


def test_a_missing_file_is_not_created_when_asked_not_to(tmp_path: Path) -> None:
    assert load_admin_token(Settings(data_dir=tmp_path), create=False) is None
    assert not (tmp_path / "admin.token").exists()


def test_an_unusable_file_refuses_start_up_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "admin.token"
    path.write_text("short\n")
    path.chmod(0o600)
    with pytest.raises(AdminTokenError, match=str(path)):
        load_admin_token(Settings(data_dir=tmp_path))
    with pytest.raises(StartupError, match="no usable token"):
        Services.build(Settings(data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"))


def test_a_group_readable_file_is_used_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "admin.token"
    path.write_text("a-token-someone-wrote-by-hand-0123456789\n")
    path.chmod(0o644)
    with captured_logs() as logs:
        token = load_admin_token(Settings(data_dir=tmp_path))
    assert token is not None and token.value.get_secret_value() == "a-token-someone-wrote-by-hand-0123456789"
    assert "chmod 600" in logs.getvalue() and "a-token-someone" not in logs.getvalue()


@pytest.mark.parametrize("configured", ["", "   ", "x" * 31])
def test_an_empty_or_short_variable_refuses_start_up_saying_how_to_fix_it(
    tmp_path: Path, configured: str
) -> None:
    settings = Settings(
        data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", admin_token=configured
    )
    with pytest.raises(StartupError, match="PATCHBAY_ADMIN_TOKEN .* 32 or more") as raised:
        Services.build(settings)
    assert configured.strip() == "" or configured not in str(raised.value)


async def test_an_empty_presented_token_is_refused(tmp_path: Path, db: Database) -> None:
    settings = Settings(data_dir=tmp_path, database_url=db.url, admin_token="t" * 40)
    app = create_app(settings, services=Services.build(settings, db))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        for header in ("Bearer ", "Bearer", "Basic " + "t" * 40, "Bearer " + "t" * 39):
            response = await client.get("/admin/v1/orgs", headers={"authorization": header})
            assert response.status_code == 401, header
        ok = await client.get("/admin/v1/orgs", headers={"authorization": "Bearer " + "t" * 40})
        assert ok.status_code == 200


async def test_the_server_accepts_the_generated_token_only(tmp_path: Path, db: Database) -> None:
    settings = Settings(data_dir=tmp_path, database_url=db.url)
    app = create_app(settings, services=Services.build(settings, db))
    token = load_admin_token(settings, create=False)
    assert token is not None
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://patchbay.test") as client:
            ok = await client.get(
                "/admin/v1/orgs", headers={"authorization": f"Bearer {token.value.get_secret_value()}"}
            )
            wrong = await client.get("/admin/v1/orgs", headers={"authorization": "Bearer not-it"})
    assert ok.status_code == 200
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "unauthorized"


async def test_admin_api_off_answers_503(tmp_path: Path, db: Database) -> None:
    settings = Settings(data_dir=tmp_path, database_url=db.url, admin_api=False)
    app = create_app(settings, services=Services.build(settings, db))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://patchbay.test") as client:
            answer = await client.get("/admin/v1/orgs", headers={"authorization": "Bearer anything"})
    assert answer.status_code == 503
    assert answer.json()["error"]["type"] == "admin_disabled"
    assert "PATCHBAY_ADMIN_API" in answer.json()["error"]["message"]


async def run_admin_cli(env: dict[str, str | None], *args: str) -> Result:
    runner = CliRunner()
    # None removes a variable the surrounding environment may have set.
    env = {"PATCHBAY_ADMIN_TOKEN": None, "PATCHBAY_ADMIN_API": None, **env}
    return await asyncio.to_thread(
        runner.invoke, cli, ["admin", "token", *args], env=env, catch_exceptions=False
    )


async def test_cli_prints_the_token_the_server_uses(tmp_path: Path) -> None:
    env: dict[str, str | None] = {"PATCHBAY_DATA_DIR": str(tmp_path), "PATCHBAY_PORT": "9123"}
    plain = await run_admin_cli(env)
    assert plain.exit_code == 0, plain.output
    token = load_admin_token(Settings(data_dir=tmp_path), create=False)
    assert token is not None and plain.stdout.strip() == token.value.get_secret_value()

    as_json = json.loads((await run_admin_cli(env, "--json")).stdout)
    assert as_json == {
        "token": token.value.get_secret_value(),
        "source": str(tmp_path / "admin.token"),
        "link": f"http://127.0.0.1:9123/ui/#token={token.value.get_secret_value()}",
    }
    link = await run_admin_cli(env, "--link", "--base-url", "https://patchbay.example.com/")
    assert link.stdout.strip() == f"https://patchbay.example.com/ui/#token={token.value.get_secret_value()}"


async def test_cli_with_the_variable_set_and_with_the_admin_api_off(tmp_path: Path) -> None:
    from_env = await run_admin_cli(
        {"PATCHBAY_DATA_DIR": str(tmp_path), "PATCHBAY_ADMIN_TOKEN": "env-token-0123456789-0123456789abcdef"},
        "--json",
    )
    assert from_env.exit_code == 0
    assert json.loads(from_env.stdout)["source"] == "PATCHBAY_ADMIN_TOKEN"
    assert not (tmp_path / "admin.token").exists()

    off = await run_admin_cli({"PATCHBAY_DATA_DIR": str(tmp_path), "PATCHBAY_ADMIN_API": "false"}, "--json")
    assert off.exit_code == 3
    assert json.loads(off.stdout)["error"]["type"] == "admin_disabled"

    helped = await run_admin_cli({}, "--help")
    assert helped.exit_code == 0 and "--link" in helped.output
